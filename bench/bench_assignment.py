"""Assignment benchmark: decisions per second of one worker, and created-to-assigned latency through Kafka.

    .venv/bin/python -m bench assignment        (or bench/bench_assignment.py [--tickets 100000] [--rate 1000]
                                                 [--teams 50] [--technicians 1000] [--skip-kafka | --kafka-only])

50 teams of 20 technicians (16 at tier 1, 4 at tier 2, capacity 30 open tickets each, all on shift), strategies
spread over the teams (least_loaded, round_robin, skills). 100k tickets arrive in round-robin order over the
teams' categories with priorities P1..P4; whenever a team holds 480 open tickets the oldest is resolved, so
capacity is freed and taken again all the time; every 1,000 tickets a technician goes off shift and comes back.

Two measurements, each over the same stream:
  (a) domain: `Desk.apply` as the team's owner runs it (fold, settle, strategy), records built beforehand;
  (b) worker: what one process spends per ticket besides Kafka's network: decode the ticket event (with the
      router's decoder), route it, encode the team-log record and read it back (as the one worker that wrote it:
      `OwnRecords`), decide, encode the published decision and the outcome record. Both with the service's desk:
      tickets resolved wait in a local store (a temporary one), out of memory.
Reports decisions per CPU second, p50/p99 CPU time from the ticket's record to its decision (per call; CPU, not
wall time, so that a shared machine's load does not count), the max-min
weighted load among each team's tier-1 technicians at the end, and capacity violations (checked after every
decision; must be 0).

  (c) through Kafka: a local broker (LocalKafka, or KAFKA_BOOTSTRAP_SERVERS), ONE `python -m assignment` process
      as production runs it, the roster written to assignment.by_team; the same ticket stream produced to
      tickets.events at --rate tickets/s (open loop: on schedule, whatever the worker does). Latency = the
      Kafka timestamp of the ticket's first decision on assignment.events minus that of its ticket.created
      (both producer CreateTime on one machine); reported for assignments (the bar), for every first
      decision, whether the worker kept up (its backlog at the end of the offered load), and the worker's CPU
      time per ticket (from /proc: what it would need of a quiet core). Then the worker's
      view over HTTP: load spread and capacity (open tickets above capacity: must be 0), and no ticket assigned
      twice.
  (d) the router's reading of tickets.events on a desk's mix of events (most of which route nothing): per event,
      with the service's decoder and with decode_event.
Prints a table and writes bench/results/assignment.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pickle
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

import bench  # noqa: E402,F401  (this tree's code first: see bench/__init__.py)
from assignment.archive import DeskArchive  # noqa: E402
from assignment.desk import CategoryRule, Desk, published, recorded  # noqa: E402
from assignment.domain import Assigned, Load  # noqa: E402
from assignment.records import OwnRecords, TicketRouted, TicketSnapshot, team_key  # noqa: E402
from assignment.routing import ROUTED_TICKET_EVENTS, route  # noqa: E402
from assignment.teamlog import CHECKPOINT_DONE_WITH, CHECKPOINT_EVERY_S  # noqa: E402
from bench import procfs  # noqa: E402
from bench.bench_reporting import a_ticket_day  # noqa: E402
from bench.percentiles import percentile  # noqa: E402
from deploy.kafka.launcher import LocalKafka, free_ports  # noqa: E402
from ticketstream_shared.contract import (  # noqa: E402
    NotReadHere,
    TicketCreated,
    TicketStatusChanged,
    decode_assignment_event,
    decode_ticket_event,
    decoder_reading,
    encode,
)
from ticketstream_shared.contract.assignment import (  # noqa: E402
    CategoryRouted,
    ShiftChanged,
    Strategy,
    TeamLogEvent,
    TeamStrategyChosen,
    TechnicianProfiled,
)
from ticketstream_shared.contract.topics import ASSIGNMENT_BY_TEAM, ASSIGNMENT_EVENTS, TICKETS_EVENTS  # noqa: E402
from ticketstream_shared.runtime.auth import write_dev_keys  # noqa: E402
from ticketstream_shared.runtime.kafka_admin import ensure_topics  # noqa: E402
from ticketstream_shared.runtime.memory import tune_garbage_collection  # noqa: E402
from ticketstream_shared.runtime.store import LocalStore  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "assignment.json"
BAR_DECISIONS_PER_S = 10_000
TIMED_PASSES = 3
BAR_P99_MS = 500.0
CAPACITY = 30
OPEN_PER_TEAM = 480
STRATEGIES = (Strategy.LEAST_LOADED, Strategy.ROUND_ROBIN, Strategy.SKILLS)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _envelope() -> dict[str, Any]:
    return {"event_id": uuid.uuid4(), "occurred_at": T0, "producer": "bench", "correlation_id": "bench"}


def roster(teams: int, technicians: int) -> list[TeamLogEvent]:
    records: list[TeamLogEvent] = []
    per_team = technicians // teams
    for number in range(teams):
        team = f"team-{number:02d}"
        records.append(CategoryRouted(**_envelope(), data={"category": f"cat-{number:02d}", "team": team,
                                                             "skill": f"cat-{number:02d}"}))  # fmt: skip
        records.append(TeamStrategyChosen(**_envelope(), data={"team": team, "strategy": STRATEGIES[number % 3]}))
        for member in range(per_team):
            technician = f"{team}-tech-{member:02d}"
            skills = [f"cat-{number:02d}"] if member % 2 == 0 or member >= per_team * 4 // 5 else ["other"]
            profile = {"technician_id": technician, "name": technician, "team": team, "capacity": CAPACITY,
                       "tier": 1 if member < per_team * 4 // 5 else 2, "skills": skills}  # fmt: skip
            records.append(TechnicianProfiled(**_envelope(), data=profile))
            records.append(ShiftChanged(**_envelope(), data={"technician_id": technician, "team": team,
                                                             "on_shift": True}))  # fmt: skip
    return records


def ticket_stream(tickets: int, teams: int) -> list[TicketCreated | TicketStatusChanged]:
    """Ticket events as intake writes them: creations, and resolutions that keep each team near OPEN_PER_TEAM."""
    events: list[TicketCreated | TicketStatusChanged] = []
    open_by_team: dict[int, list[str]] = {team: [] for team in range(teams)}
    for number in range(tickets):
        team = number % teams
        ticket_id = f"ticket-{number}"
        events.append(TicketCreated(
            **_envelope(), ticket_id=ticket_id, client_id="acme", aggregate_version=1,
            data={"requester_id": "alice", "title": "Printer on fire", "category": f"cat-{team:02d}",
                  "priority": f"P{1 + number % 4}"},
        ))  # fmt: skip
        open_by_team[team].append(ticket_id)
        if len(open_by_team[team]) > OPEN_PER_TEAM:
            oldest = open_by_team[team].pop(0)
            events.append(TicketStatusChanged(
                **_envelope(), ticket_id=oldest, client_id="acme", aggregate_version=2,
                data={"from_status": "new", "to_status": "resolved"},
            ))  # fmt: skip
    return events


def shift_changes(number: int, teams: int) -> list[TeamLogEvent]:
    """Every 1,000 tickets one technician goes off shift and comes back: their waiting tickets are redistributed."""
    team = f"team-{number % teams:02d}"
    technician = f"{team}-tech-{number % 16:02d}"
    return [ShiftChanged(**_envelope(), data={"technician_id": technician, "team": team, "on_shift": on})
            for on in (False, True)]  # fmt: skip


def check_capacity(desk: Desk, decisions: list, violations: list[str]) -> None:
    """Add to `violations` the technicians `decisions` took over their capacity."""
    for decision in decisions:
        outcome = decision.outcome
        if isinstance(outcome, Assigned) and outcome.strategy is not Strategy.MANUAL:
            team = desk.teams[decision.team]
            if team.load_of(outcome.technician_id).open_tickets > team.technicians[outcome.technician_id].capacity:
                violations.append(outcome.technician_id)


def announced(decisions: list) -> int:
    """How many of `decisions` are published (assigned, escalated, or newly unassignable: retries that find nobody
    for the same reason tell nothing new)."""
    return sum(1 for decision in decisions if getattr(decision.outcome, "announce", True))


def run(events: list, setup: list[TeamLogEvent], teams: int, through_codec: bool) -> dict[str, Any]:
    """Passes over the stream, each from the same start: TIMED_PASSES timed whole, with nothing but the worker's
    work in the loop (decisions per CPU second: their median is the figure, the best and worst are printed beside
    it, as the CPU time of one pass varies by up to 15% on this shared machine), and one that times each ticket and
    checks capacity after every decision (its clock reads and checks cost ~7% of the loop: they are the
    benchmark's, not the worker's)."""
    timed = sorted((_pass(events, setup, teams, through_codec, False) for _ in range(TIMED_PASSES)),
                   key=lambda result: result["seconds"])  # fmt: skip
    checked = _pass(events, setup, teams, through_codec, True)
    assert all(each["decisions"] == checked["decisions"] for each in timed), "the passes decided differently"
    median = timed[len(timed) // 2]
    latencies = checked.pop("latencies")
    return {
        "decisions": median["decisions"],
        "seconds": round(median["seconds"], 3),
        "decisions_per_s": round(median["decisions"] / median["seconds"]),
        "decisions_per_s_passes": [round(each["decisions"] / each["seconds"]) for each in timed],
        "ticket_events_per_s": round(len(events) / median["seconds"]),
        "decisions_per_s_checked_pass": round(checked["decisions"] / checked["seconds"]),
        "p50_decision_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_decision_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "max_decision_ms": round(latencies[-1] * 1000, 3),
        **checked["spread"],
        "capacity_violations": checked["violations"],
    }


def _pass(events: list, setup: list[TeamLogEvent], teams: int, through_codec: bool, checked: bool) -> dict[str, Any]:
    store = LocalStore(None)
    try:
        return _timed_pass(Desk(shelf=DeskArchive(store)), events, setup, teams, through_codec, checked)
    finally:
        store.close()


def _timed_pass(
    desk: Desk, events: list, setup: list[TeamLogEvent], teams: int, through_codec: bool, checked: bool
) -> dict[str, Any]:
    """One pass of the worker's path over `events`, the desk with its shelf of tickets done with, as the service's."""
    for record in setup:
        desk.apply(record, decides=True, instance="bench")
    tune_garbage_collection()  # as the worker does once it has read the team log

    def rules(ticket: TicketSnapshot) -> CategoryRule | None:
        return desk.rules.get(ticket.category)

    known: dict[str, Any] = {}
    if not through_codec:  # records built beforehand: only the domain is timed
        prepared = []
        for event in events:
            routing = route(event, known.get(event.ticket_id), rules)
            known[event.ticket_id] = routing.where
            prepared.append(routing.records)
    raw_events = [encode(event) for event in events] if through_codec else []
    read_ticket_event = decoder_reading(TICKETS_EVENTS, ROUTED_TICKET_EVENTS)  # as the service's router reads
    own = OwnRecords()  # the team log's records this worker wrote, read back
    now = datetime.now(UTC)
    latencies: list[float] = []
    violations: list[str] = []
    decisions_made = 0
    started = 0.0
    checkpoint_at = CHECKPOINT_EVERY_S * BAR_DECISIONS_PER_S
    began = time.process_time()  # CPU time: the machine may be shared, and wall time counts the others' work
    for index in range(len(events)):
        if checked:
            started = time.process_time()
        if through_codec:
            event = read_ticket_event(raw_events[index])
            routing = route(event, known.get(event.ticket_id), rules)
            known[event.ticket_id] = routing.where
            records = [own.decode(own.encode(record)) for record in routing.records]
        else:
            records = prepared[index]
        for record in records:
            decisions = desk.apply(record, decides=True, instance="bench")
            if through_codec:
                for decision in decisions:
                    ticket = desk.ticket(decision.outcome.ticket_id)
                    if (event_out := published(decision, ticket, now)) is not None:
                        encode(event_out)
                    if (outcome_record := recorded(decision, "bench", now)) is not None:
                        encode(outcome_record)
            decisions_made += announced(decisions)
            if checked:
                check_capacity(desk, decisions, violations)
                if isinstance(record, TicketRouted):
                    latencies.append(time.process_time() - started)
        if desk.shelf is not None and (len(desk.done_with) >= CHECKPOINT_DONE_WITH or decisions_made >= checkpoint_at):
            # as the worker's checkpoints: every CHECKPOINT_EVERY_S, which at the bar's rate is so many decisions
            checkpoint_at = decisions_made + CHECKPOINT_EVERY_S * BAR_DECISIONS_PER_S
            desk.put_aside()
            desk.shelf.checkpoint(pickle.dumps(desk.memory(), pickle.HIGHEST_PROTOCOL), {})  # type: ignore[union-attr]
        if index and index % 1_000 == 0:
            for shift in shift_changes(index // 1_000, teams):
                decisions = desk.apply(shift, decides=True, instance="bench")
                decisions_made += announced(decisions)
                if checked:
                    check_capacity(desk, decisions, violations)
    elapsed = time.process_time() - began
    latencies.sort()
    views = [
        (team.name, team.strategy.value, tech.tier, tech.skills, team.load_of(tech.technician_id))
        for team in desk.teams.values() for tech in team.technicians.values()
    ]  # fmt: skip
    return {
        "decisions": decisions_made,
        "seconds": elapsed,
        "latencies": latencies,
        "spread": load_spread(views),
        "violations": len(violations),
    }


def load_spread(views: list[tuple[str, str, int, frozenset[str] | list[str], Load]]) -> dict[str, Any]:
    """Max - min load among each team's equally eligible technicians (tier 1; with the team's skill, for strategy
    skills), by strategy; `views` are (team, strategy, tier, skills, load) per technician."""
    peers: dict[tuple[str, str], list[Load]] = {}
    for team, strategy, tier, skills, load in views:
        if tier == 1 and (strategy != Strategy.SKILLS or team.replace("team", "cat") in skills):
            peers.setdefault((team, strategy), []).append(load)
    weighted: dict[str, list[int]] = {}
    counts: dict[str, list[int]] = {}
    for (_, strategy), loads in peers.items():
        weighted.setdefault(strategy, []).append(max(x.weighted for x in loads) - min(x.weighted for x in loads))
        counts.setdefault(strategy, []).append(max(x.open_tickets for x in loads) - min(x.open_tickets for x in loads))
    return {
        "weighted_load_spread_max_by_strategy": {name: max(values) for name, values in weighted.items()},
        "weighted_load_spread_mean_by_strategy": {name: round(sum(v) / len(v), 2) for name, v in weighted.items()},
        "open_tickets_spread_max_by_strategy": {name: max(values) for name, values in counts.items()},
    }


class Worker:
    """One `python -m assignment` process on a free port, as production runs it; stopped with SIGTERM."""

    def __init__(self, bootstrap: str, api_keys_file: Path, log_path: Path) -> None:
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        environment = {
            **os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "API_KEYS_FILE": str(api_keys_file),
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(self.port), "CONSUMER_GROUP": f"bench-{uuid.uuid4().hex[:8]}",
            "LOG_LEVEL": "WARNING",
        }  # fmt: skip
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "assignment"], cwd=ROOT, env=environment, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def get(self, path: str, key: str) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def wait_until(self, ready: Any, what: str, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited: {self.log_path.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(OSError, ValueError):
                if ready():
                    return
            time.sleep(0.2)
        raise TimeoutError(f"not within {timeout_s:.0f} s: {what}")

    def cpu_seconds(self) -> float:
        return procfs.cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


async def offer_through_kafka(
    bootstrap: str, setup: list[TeamLogEvent], events: list, rate: float, worker: Worker, key: str, technicians: int
) -> dict[str, Any]:
    """Write the roster, then the ticket stream at `rate` tickets/s; collect every decision of assignment.events."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    consumer = AIOKafkaConsumer(ASSIGNMENT_EVENTS, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await producer.start()
    await consumer.start()
    first_decision: dict[str, tuple[int, str]] = {}  # ticket -> (Kafka timestamp ms, event type)
    assignments: dict[str, set[uuid.UUID]] = {}

    async def read() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event = decode_assignment_event(record.value)
                    first_decision.setdefault(event.ticket_id, (record.timestamp, event.event_type))
                    if event.event_type == "assignment.assigned":
                        assignments.setdefault(event.ticket_id, set()).add(event.event_id)

    try:
        for record in setup:
            await producer.send(ASSIGNMENT_BY_TEAM, encode(record), key=team_key(record).encode())
        await producer.flush()
        await asyncio.to_thread(worker.wait_until, lambda: len(worker.get("/v1/technicians", key)["technicians"])
                                == technicians, "the worker has read the roster")  # fmt: skip
        reader = asyncio.create_task(read())
        loop = asyncio.get_running_loop()
        cpu_before = worker.cpu_seconds()
        created: dict[str, asyncio.Future[Any]] = {}
        began = loop.time()
        for event in events:
            if isinstance(event, TicketCreated):
                if (delay := began + len(created) / rate - loop.time()) > 0:
                    await asyncio.sleep(delay)
                created[event.ticket_id] = await producer.send(TICKETS_EVENTS, encode(event),
                                                               key=event.ticket_id.encode())  # fmt: skip
            else:
                await producer.send(TICKETS_EVENTS, encode(event), key=event.ticket_id.encode())
        await producer.flush()
        offered_s = loop.time() - began
        backlog = len(created) - len(first_decision)
        deadline = loop.time() + 300
        while len(first_decision) < len(created) and loop.time() < deadline:
            await asyncio.sleep(0.2)
        drained_s = loop.time() - began
        worker_cpu_s = worker.cpu_seconds() - cpu_before
        reader.cancel()
        created_at = {ticket: (await sent).timestamp for ticket, sent in created.items()}
    finally:
        await consumer.stop()
        await producer.stop()
    to_decision = sorted(first_decision[t][0] - at for t, at in created_at.items() if t in first_decision)
    to_assigned = sorted(first_decision[t][0] - at for t, at in created_at.items()
                         if first_decision.get(t, (0, ""))[1] == "assignment.assigned")  # fmt: skip
    return {
        "offered_tickets_per_s": rate,
        "offered_seconds": round(offered_s, 1),
        "drained_seconds": round(drained_s, 1),
        "undecided_when_offer_ended": backlog,
        "undecided_at_end": len(created) - len(first_decision),
        "worker_cpu_seconds": round(worker_cpu_s, 1),
        "worker_cpu_ms_per_ticket": round(worker_cpu_s * 1000 / len(created), 3),
        "tickets_per_cpu_second": round(len(created) / worker_cpu_s),
        "assigned_at_first_decision": len(to_assigned),
        "p50_created_to_assigned_ms": percentile(to_assigned, 0.5),
        "p99_created_to_assigned_ms": percentile(to_assigned, 0.99),
        "max_created_to_assigned_ms": percentile(to_assigned, 1.0),
        "p99_created_to_first_decision_ms": percentile(to_decision, 0.99),
        "tickets_assigned_twice": sum(1 for ids in assignments.values() if len(ids) > 1),
    }


def run_through_kafka(setup: list[TeamLogEvent], events: list, rate: float, technicians: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-assignment-") as scratch, contextlib.ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or stack.enter_context(
            LocalKafka(Path(scratch) / "kafka")).bootstrap_servers  # fmt: skip
        asyncio.run(ensure_topics(bootstrap))
        dev_keys, api_keys = write_dev_keys(Path(scratch) / "keys")
        key = json.loads(dev_keys.read_text())["integration"]
        worker = Worker(bootstrap, api_keys, Path(scratch) / "assignment.log")
        stack.callback(worker.stop)
        worker.wait_until(lambda: worker.get("/readyz", key) is not None, "the worker ready")
        result = asyncio.run(offer_through_kafka(bootstrap, setup, events, rate, worker, key, technicians))
        views = []
        for tech in worker.get("/v1/technicians", key)["technicians"]:
            strategy = worker.get(f"/v1/routing/teams/{tech['team']}", key)["strategy"]
            load = Load(tech["open_tickets"], tech["weighted_load"])
            views.append((tech["team"], strategy, tech["tier"], tech["skills"], load))
            result["capacity_violations"] = result.get("capacity_violations", 0) + (
                tech["open_tickets"] > tech["capacity"])  # fmt: skip
        return {**result, **load_spread(views)}


def router_reading(tickets: int) -> dict[str, Any]:
    """(d): what the router's reading of tickets.events costs per event on a desk's mix (created, in progress, six
    worklogs, a comment, resolved: the reporting benchmark's day), with the decoder the service uses (it passes over
    what it routes nothing of) and with decode_event for every event (best of five passes each, wall time)."""
    messages = [encode(event) for number in range(tickets) for event in a_ticket_day(number)]
    service = decoder_reading(TICKETS_EVENTS, ROUTED_TICKET_EVENTS)

    def read_as_the_service(raw: bytes) -> None:
        with contextlib.suppress(NotReadHere):
            service(raw)

    def best_us(read: Any) -> float:
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for raw in messages:
                read(raw)
            best = min(best, time.perf_counter() - started)
        return round(best / len(messages) * 1e6, 2)

    return {
        "events": len(messages),
        "events_per_ticket": len(messages) // tickets,
        "service_decoder_us_per_event": best_us(read_as_the_service),
        "decode_event_us_per_event": best_us(decode_ticket_event),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--teams", type=int, default=50)
    parser.add_argument("--technicians", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=1_000, help="tickets/s offered through Kafka (the bar)")
    parser.add_argument("--skip-kafka", action="store_true", help="only the in-process runs")
    parser.add_argument("--kafka-only", action="store_true", help="only the run through Kafka")
    args = parser.parse_args()
    setup = roster(args.teams, args.technicians)
    events = ticket_stream(args.tickets, args.teams)
    results = {
        "tickets": args.tickets,
        "teams": args.teams,
        "technicians": args.technicians,
        "ticket_events": len(events),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "domain": None if args.kafka_only else run(events, setup, args.teams, through_codec=False),
        "worker_without_kafka": None if args.kafka_only else run(events, setup, args.teams, through_codec=True),
        "through_kafka": None if args.skip_kafka else run_through_kafka(setup, events, args.rate, args.technicians),
        "router_reading": None if args.kafka_only else router_reading(20_000),
        "bar": {"decisions_per_s": BAR_DECISIONS_PER_S, "p99_ms": BAR_P99_MS, "capacity_violations": 0},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"{'run':<22}{'decisions/s':>12}{'events/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'violations':>11}  spread max")
    for name in ("domain", "worker_without_kafka"):
        if (row := results[name]) is None:
            continue
        print(f"{name:<22}{row['decisions_per_s']:>12,}{row['ticket_events_per_s']:>10,}{row['p50_decision_ms']:>8}"
              f"{row['p99_decision_ms']:>8}{row['capacity_violations']:>11}  "
              f"{row['weighted_load_spread_max_by_strategy']}")  # fmt: skip
        print(f"{'':<22}decisions/s of the {TIMED_PASSES} timed passes, best first: {row['decisions_per_s_passes']}")
    if (reading := results["router_reading"]) is not None:
        print(f"router reading a desk's mix ({reading['events_per_ticket']} events a ticket): "
              f"{reading['service_decoder_us_per_event']} us an event, decode_event "
              f"{reading['decode_event_us_per_event']} us")  # fmt: skip
    if (kafka := results["through_kafka"]) is not None:
        print(f"through Kafka at {kafka['offered_tickets_per_s']:,.0f} tickets/s: created-to-assigned p50 "
              f"{kafka['p50_created_to_assigned_ms']} ms, p99 {kafka['p99_created_to_assigned_ms']} ms (bar "
              f"{BAR_P99_MS:.0f}); first decision p99 {kafka['p99_created_to_first_decision_ms']} ms; undecided when "
              f"the offer ended {kafka['undecided_when_offer_ended']}; capacity violations "
              f"{kafka['capacity_violations']}; assigned twice {kafka['tickets_assigned_twice']}; worker CPU "
              f"{kafka['worker_cpu_ms_per_ticket']} ms per ticket; spread max "
              f"{kafka['weighted_load_spread_max_by_strategy']}")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
