"""SLA benchmark: 100k running clocks, 1k ticket events/s, alarms raised on time by the deadline index; the same
input through a polling baseline (every open clock scanned every N seconds, as Zammad does).

    .venv/bin/python bench/bench_sla.py [--tickets 100000] [--seconds 30] [--rate 1000] [--poll-every 5]

Measures the worker's core in this process, in real time, without Kafka: decoding ticket events from JSON bytes,
deciding, the heap-driven tick (lateness = wall time when raised minus the moment due), missed and doubled alarms,
decided events/s, memory per clock (tracemalloc), and a configuration change read live re-timing every clock (the
worker's sweep in parts, the longest part being the longest it goes without a heartbeat, against one synchronous
sweep). Kafka's share and a restart are measured by
tests/integration/test_sla_service.py (kill -9) and are not repeated here. Writes bench/results/sla.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import tracemalloc
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench  # noqa: E402,F401  (this tree's code first: see bench/__init__.py)
from bench.percentiles import percentiles  # noqa: E402
from sla.agreements import Agreements  # noqa: E402
from sla.clocks import ClockStatus  # noqa: E402
from sla.timekeeper import Timekeeper  # noqa: E402
from ticketstream_shared.contract import decode_ticket_event, encode  # noqa: E402
from ticketstream_shared.contract.events import CommentAdded, TicketCreated, TicketStatusChanged  # noqa: E402
from ticketstream_shared.contract.sla import CalendarChanged  # noqa: E402
from ticketstream_shared.runtime.memory import tune_garbage_collection  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "sla.json"
WORKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
ALARMS = ("sla.warning", "sla.breached")


def _envelope(ticket_id: str, version: int, at: datetime) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "occurred_at": at,
        "ticket_id": ticket_id,
        "client_id": f"client-{hash(ticket_id) % 50}",
        "aggregate_version": version,
        "producer": "intake",
        "correlation_id": "bench",
    }


def created(ticket_id: str, at: datetime) -> bytes:
    data = {"requester_id": "r", "title": "t", "category": "network", "priority": "P2"}
    return encode(TicketCreated(**_envelope(ticket_id, 1, at), data=data))


def follow_up(ticket_id: str, version: int, at: datetime, rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        data = {
            "comment_id": uuid.uuid4(),
            "author_id": "a",
            "author_role": "requester",
            "body": "b",
            "visibility": "public",
        }
        return encode(CommentAdded(**_envelope(ticket_id, version, at), data=data))
    to = "in_progress" if version % 2 == 0 else "open"
    data = {"from_status": "open" if to == "in_progress" else "in_progress", "to_status": to}
    return encode(TicketStatusChanged(**_envelope(ticket_id, version, at), data=data))


def load(tickets: int, run_seconds: float, now: datetime) -> tuple[Timekeeper, list[str], float]:
    """`tickets` P2 tickets on the built-in 24x7 policy (first answer in 60 min), opened so that alarms fall due
    evenly over the run: a third reach their 75% warning during it, a third their 90% warning, a third their
    breach. Returns the decide rate of the load (events/s, JSON decoding included)."""
    keeper = Timekeeper(Agreements.with_defaults())
    ids = [str(uuid.UUID(int=n)) for n in range(tickets)]
    ages = (timedelta(minutes=45), timedelta(minutes=54), timedelta(minutes=60))
    raw = [
        created(ticket_id, now - ages[index % 3] + timedelta(seconds=run_seconds * index / tickets))
        for index, ticket_id in enumerate(ids)
    ]
    began = time.process_time()
    for index, message in enumerate(raw):
        keeper.handle(decode_ticket_event(message), index % 6)
    rate = tickets / (time.process_time() - began)
    keeper.tick(now)  # alarms already past when the run begins are not the run's to raise
    tune_garbage_collection()  # as the worker does once its clocks are rebuilt
    return keeper, ids, rate


def follow_up_rate(keeper: Timekeeper, ids: list[str], count: int, now: datetime) -> float:
    """Decided events/s (CPU time, JSON decoding included) for the events that follow a ticket's creation: public
    comments of requesters and status changes, on tickets with running clocks."""
    rng = random.Random(11)
    versions = dict.fromkeys(ids, 1)
    raw = []
    for _ in range(count):
        ticket_id = rng.choice(ids)
        versions[ticket_id] += 1
        raw.append(follow_up(ticket_id, versions[ticket_id], now, rng))
    began = time.process_time()
    for message in raw:
        keeper.handle(decode_ticket_event(message), 0)
    return count / (time.process_time() - began)


def expected_alarms(keeper: Timekeeper, until: datetime) -> Counter[tuple[str, str, str]]:
    expected: Counter[tuple[str, str, str]] = Counter()
    for state in keeper.tickets():
        for clock in state.clocks:
            for at, kind in clock.alarms:
                if at <= until and clock.status is ClockStatus.RUNNING:
                    expected[(state.ticket_id, clock.metric.value, kind)] += 1
    return expected


def run_heap(keeper: Timekeeper, ids: list[str], seconds: float, rate: int, now0: datetime) -> dict[str, Any]:
    """The worker's loop in real time: events at `rate`/s in 20 ms batches, a tick after each batch, sleeping until
    the next alarm when idle."""
    rng = random.Random(7)
    versions = dict.fromkeys(ids, 1)
    offset = now0 - datetime.now(UTC)  # the run's clock: the same instant as now0 at the start
    start = time.perf_counter()
    cpu0 = time.process_time()
    lateness, seen, handled, ticking = [], Counter(), 0, 0.0
    while (elapsed := time.perf_counter() - start) < seconds:
        decided = []
        for _ in range(int(rate * elapsed) - handled):
            ticket_id = rng.choice(ids)
            versions[ticket_id] += 1
            event = decode_ticket_event(follow_up(ticket_id, versions[ticket_id], datetime.now(UTC) + offset, rng))
            decided.extend(keeper.handle(event, 0))  # an event raises the alarms of its ticket due before it
            handled += 1
        now = datetime.now(UTC) + offset
        tick_began = time.perf_counter()
        decided.extend(keeper.tick(now))
        ticking += time.perf_counter() - tick_began
        for event in decided:
            if event.event_type in ALARMS:
                raised = datetime.now(UTC) + offset
                lateness.append((raised - event.occurred_at).total_seconds())
                kind = "breach" if event.event_type == "sla.breached" else f"warning:{event.data.threshold:g}"
                seen[(event.ticket_id, event.data.metric.value, kind, event.event_id)] += 1
        due = keeper.next_due()
        wait = 0.02 if due is None else min(0.02, max((due - (datetime.now(UTC) + offset)).total_seconds(), 0))
        time.sleep(wait)
    return {
        "lateness": lateness,
        "seen": seen,
        "cpu_s": time.process_time() - cpu0,
        "tick_s": ticking,
        "events_handled": handled,
        "end": datetime.now(UTC) + offset,
    }


def run_polling(keeper: Timekeeper, seconds: float, every: float, now0: datetime) -> dict[str, Any]:
    """The baseline: every `every` seconds, scan every running clock and raise what is due."""
    offset = now0 - datetime.now(UTC)
    start = time.perf_counter()
    scanning = 0.0
    lateness: list[float] = []
    raised: set[tuple[str, str, str]] = set()
    while time.perf_counter() - start < seconds:
        scan_began = time.perf_counter()
        now = datetime.now(UTC) + offset
        for state in keeper.tickets():
            for clock in state.clocks:
                for at, kind in clock.alarms:
                    key = (state.ticket_id, clock.metric.value, kind)
                    if at <= now and key not in raised:
                        raised.add(key)
                        lateness.append((datetime.now(UTC) + offset - at).total_seconds())
        scanning += time.perf_counter() - scan_began
        time.sleep(max(0.0, every - (time.perf_counter() - start) % every))
    return {"lateness": lateness, "scan_s": scanning}


def configuration_change(keeper: Timekeeper, now: datetime, parted: bool) -> dict[str, Any]:
    """A calendar change read live, effective `now`, re-timing every clock: seconds of CPU at 100k tickets. The
    worker sweeps in parts and lets the event loop run between them (`parted`); the longest part is the longest the
    process goes without a heartbeat. Without `parted`, the one synchronous sweep of `tick` (before 2026-12-05)."""
    office_hours = {"timezone": "UTC", "week": {day: [{"start": "08:00", "end": "18:00"}] for day in WORKDAYS}}
    keeper.record_change(
        CalendarChanged(
            event_id=uuid.uuid4(), occurred_at=now, effective_at=now, producer="sla", correlation_id="bench",
            changed_by="bench", calendar_id="default", data=office_hours,
        )
    )  # fmt: skip
    parts: list[float] = []
    began = last = time.perf_counter()
    if parted:
        for _ in keeper.sweeping(now):
            parts.append(time.perf_counter() - last)
            last = time.perf_counter()
    else:
        keeper.tick(now)
        parts.append(time.perf_counter() - began)
    return {
        "sweep_s": round(time.perf_counter() - began, 2),
        "parts": len(parts),
        "longest_part_ms": round(max(parts) * 1000, 1),
        "median_part_ms": round(statistics.median(parts) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--poll-every", type=float, default=5)
    args = parser.parse_args()

    tune_garbage_collection()  # as the sla service does at start-up
    now0 = datetime.now(UTC)
    tracemalloc.start()
    keeper, ids, _ = load(args.tickets, args.seconds, now0)
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    clocks = sum(len(state.clocks) for state in keeper.tickets())

    # The baseline first, on its own copy of the input, so the heap run's state is untouched. Each run's clock
    # starts at the `now` its input was made for, whatever the loading took.
    baseline_keeper, _, _ = load(args.tickets, args.seconds, now0)
    polling = run_polling(baseline_keeper, args.seconds, args.poll_every, now0)

    keeper, ids, load_rate = load(args.tickets, args.seconds, now0)
    print(f"loaded {args.tickets} tickets ({clocks} clocks) at {load_rate:,.0f} events/s")
    heap = run_heap(keeper, ids, args.seconds, args.rate, now0)
    doubled = sum(1 for count in heap["seen"].values() if count > 1) + (
        len(heap["seen"]) - len({key[:3] for key in heap["seen"]})
    )
    fresh, _, _ = load(args.tickets, args.seconds, now0)
    expected = expected_alarms(fresh, heap["end"] - timedelta(seconds=1))
    follow_ups = follow_up_rate(fresh, ids, 100_000, now0)
    raised_keys = {key[:3] for key in heap["seen"]}
    # A follow-up on a ticket never cancels an alarm here (requester comments, open <-> in progress), so every
    # alarm due before the end must have been raised.
    missed = sum(1 for key in expected if key not in raised_keys)

    change_at = now0 + timedelta(seconds=args.seconds)  # after the run's alarms: the change alone re-times
    sweeps = {
        "one_sweep": configuration_change(load(args.tickets, args.seconds, now0)[0], change_at, parted=False),
        "in_parts": configuration_change(load(args.tickets, args.seconds, now0)[0], change_at, parted=True),
    }
    print(f"configuration change over {args.tickets} tickets: {sweeps}")

    heap_lateness, poll_lateness = percentiles(heap["lateness"]), percentiles(polling["lateness"])
    results = {
        "tickets": args.tickets,
        "running_clocks": clocks,
        "seconds": args.seconds,
        "ticket_events_per_s_offered": args.rate,
        "ticket_events_handled": heap["events_handled"],
        "alarms_raised": len(heap["lateness"]),
        "lateness_s": heap_lateness,
        "missed": missed,
        "doubled": doubled,
        "decide_events_per_s_one_worker": {
            "ticket_created": round(load_rate),
            "follow_ups": round(follow_ups),
            "mix_1_created_5_follow_ups": round(6 / (1 / load_rate + 5 / follow_ups)),
        },
        "memory_bytes_per_clock": round(memory / clocks),
        "configuration_change_read_live": sweeps,
        "cpu_s_total": round(heap["cpu_s"], 2),
        "cpu_s_finding_due_alarms": round(heap["tick_s"], 3),
        "polling_baseline": {
            "every_s": args.poll_every,
            "alarms_raised": len(polling["lateness"]),
            "lateness_s": poll_lateness,
            "cpu_s_finding_due_alarms": round(polling["scan_s"], 3),
        },
        "ratios_polling_over_heap": {
            "lateness_p50": round(poll_lateness["p50"] / max(heap_lateness["p50"], 1e-6), 1),
            "lateness_p99": round(poll_lateness["p99"] / max(heap_lateness["p99"], 1e-6), 1),
            "cpu_finding_due_alarms": round(polling["scan_s"] / max(heap["tick_s"], 1e-6), 2),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
