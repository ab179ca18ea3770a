"""SLA benchmark through Kafka, with one restart mid-run: alarm lateness as sla.events records it, before, during
and after a takeover; missed and doubled alarms; what the worker spends.

    .venv/bin/python -m bench sla_restart       (or bench/bench_sla_restart.py [--tickets 100000] [--seconds 60]
                                                 [--rate 1000] [--restart kill|term|standby] [--session 10]
                                                 [--lead 60] [--logs DIR])

A LocalKafka (or KAFKA_BOOTSTRAP_SERVERS) and ONE `python -m sla` process as production runs it (its store on a
disk kept across the restart), on the built-in 24x7 policy; with `--restart standby`, TWO processes in one group,
each following the other's changelog, and the group's session timeout `--session` seconds. `--tickets`
ticket.created events (bench_sla.py's input) are produced, backdated so that their alarms
fall due evenly over the `--seconds` run that begins `--lead` seconds later; once the worker holds every ticket, the
run offers follow-ups (requester comments, open <-> in progress) at `--rate`/s on schedule. Halfway through, the
process is killed (`--restart kill`, SIGKILL: the honest worst case) or stopped (`term`, SIGTERM) and a new one
started at once; takeover = signal to /readyz 200 (clocks loaded, replayed and caught up). With `standby`, the first
process is killed and takeover = signal to the survivor holding every ticket.

At the end sla.events is read: lateness = the record's Kafka timestamp minus the moment the alarm was due (its
occurred_at), overall, for alarms due outside the restart window and for those due inside it (between the signal
and the takeover: they wait for the new process). Missed = alarms the pure Timekeeper, fed the same events, raises
by the end of the run but sla.events lacks; doubled = an event id twice, or one alarm (ticket, metric, kind,
moment) under two ids. The worker's CPU seconds and RSS come from /proc. Writes bench/results/sla_restart.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench  # noqa: E402,F401  (this tree's code first: see bench/__init__.py)
from bench import procfs  # noqa: E402
from bench.bench_sla import ALARMS, created, follow_up  # noqa: E402
from bench.bench_system import wait_for  # noqa: E402
from bench.metrics import scraped  # noqa: E402
from bench.percentiles import percentiles  # noqa: E402
from deploy.kafka.launcher import LocalKafka, free_ports  # noqa: E402
from deploy.processes import ServiceProcess  # noqa: E402
from sla.agreements import Agreements  # noqa: E402
from sla.timekeeper import Timekeeper  # noqa: E402
from ticketstream_shared.contract import decode_ticket_event  # noqa: E402
from ticketstream_shared.contract.topics import SLA_EVENTS, TICKET_PARTITIONS, TICKETS_EVENTS  # noqa: E402
from ticketstream_shared.runtime.auth import write_dev_keys  # noqa: E402
from ticketstream_shared.runtime.kafka import records_to_end  # noqa: E402
from ticketstream_shared.runtime.kafka_admin import ensure_topics  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "sla_restart.json"
#: Ages at which a P2 ticket of the default 24x7 policy (first answer in 60 min) warns at 75 %, 90 %, breaches.
AGES = (timedelta(minutes=45), timedelta(minutes=54), timedelta(minutes=60))


class SlaWorker:
    """The one `python -m sla` process of the run, and what it costs."""

    def __init__(
        self, bootstrap: str, api_keys: Path, admin_key: str, log: Path, group: str, state: Path, session_s: float
    ) -> None:
        (port,) = free_ports(1)
        env = {
            **os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "API_KEYS_FILE": str(api_keys),
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port),
            "CONSUMER_GROUP": group, "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "STATE_DIR": str(state), "SESSION_TIMEOUT_SECONDS": str(session_s),
        }  # fmt: skip
        self.process = ServiceProcess("sla", f"exec {sys.executable} -m sla", env, port, log)
        self._key = admin_key

    @property
    def pid(self) -> int:
        return self.process.pid

    def start_and_wait(self) -> float:
        """Start it; seconds until it answers /readyz 200."""
        self.process.start()
        try:
            return wait_for(self.process.ready, 300, "sla ready")
        except SystemExit as failure:
            with contextlib.suppress(httpx.HTTPError):
                failure = SystemExit(f"{failure}: {httpx.get(f'{self.process.url}/readyz', timeout=5).text}")
            log = self.process.log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{failure}; its log ends: {log}") from None

    def metric(self, name: str) -> float:
        """The value of an unlabelled metric."""
        return sum(sample.value for sample in scraped(self.process.url, self._key) if sample.name == name)

    def held(self) -> float:
        with contextlib.suppress(httpx.HTTPError):
            return self.metric("ticketstream_sla_tickets")
        return 0.0


def hold(workers: list[SlaWorker], tickets: int) -> bool:
    return sum(worker.held() for worker in workers) >= tickets


def backdated_tickets(tickets: int, first_due: datetime, seconds: float) -> list[tuple[str, bytes]]:
    """(ticket id, ticket.created) whose alarms fall due evenly over `seconds` from `first_due`: a third warn at
    75 %, a third at 90 %, a third breach (as in bench_sla.py)."""
    ids = [f"bench-{n:06d}" for n in range(tickets)]
    return [
        (ticket_id, created(ticket_id, first_due - AGES[n % 3] + timedelta(seconds=seconds * n / tickets)))
        for n, ticket_id in enumerate(ids)
    ]


async def produce_tickets(bootstrap: str, raw: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for ticket_id, value in raw:
            await producer.send(TICKETS_EVENTS, value, key=ticket_id.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def offer_follow_ups(bootstrap: str, ids: list[str], rate: int, until: float) -> list[tuple[str, bytes]]:
    """Follow-ups at `rate`/s on schedule (open loop) until the wall clock reaches `until`; returns them in order."""
    rng = random.Random(7)
    versions = dict.fromkeys(ids, 1)
    sent: list[tuple[str, bytes]] = []
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    try:
        began = time.time()
        while (now := time.time()) < until:
            for _ in range(int(rate * (now - began)) - len(sent)):
                ticket_id = rng.choice(ids)
                versions[ticket_id] += 1
                value = follow_up(ticket_id, versions[ticket_id], datetime.now(UTC), rng)
                await producer.send(TICKETS_EVENTS, value, key=ticket_id.encode())
                sent.append((ticket_id, value))
            await asyncio.sleep(0.01)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def restart(workers: list[SlaWorker], how: str, at: float, tickets: int) -> dict[str, Any]:
    """At wall time `at`: signal the first worker; with a standby, wait until the other holds every ticket, otherwise
    start a new process at once and wait until it is ready."""
    time.sleep(max(0.0, at - time.time()))
    victim, heir = workers[0], workers[-1]
    cpu = sum(procfs.cpu_seconds(worker.pid) for worker in workers)
    loaded_before = heir.metric("ticketstream_sla_tickets_restored_total") if heir is not victim else 0.0
    replayed_before = heir.metric("ticketstream_sla_events_replayed_total") if heir is not victim else 0.0
    signalled = time.time()
    if how == "term":
        victim.process.popen.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        victim.process.popen.wait(60)  # type: ignore[union-attr]
    else:
        victim.process.kill9()
    exited = time.time()
    if heir is victim:
        victim.start_and_wait()
    else:
        wait_for(lambda: heir.held() >= tickets, 300, "the standby holds every ticket")
    ready = time.time()
    return {
        "signalled_at": signalled,
        "ready_at": ready,
        "exit_s": round(exited - signalled, 2),
        "takeover_s": round(ready - signalled, 2),
        "cpu_s_before": cpu,
        "tickets_restored": heir.metric("ticketstream_sla_tickets_restored_total") - loaded_before,
        "events_replayed": heir.metric("ticketstream_sla_events_replayed_total") - replayed_before,
    }


async def read_sla_events(bootstrap: str) -> list[tuple[int, dict[str, Any]]]:
    """(Kafka timestamp in ms, event) of every record of sla.events so far."""
    partitions = [TopicPartition(SLA_EVENTS, number) for number in range(TICKET_PARTITIONS)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return [
            (record.timestamp, json.loads(record.value))
            async for record in records_to_end(consumer, dict.fromkeys(partitions))
        ]
    finally:
        await consumer.stop()


def alarm_key(event: Any) -> tuple[str, str, str, datetime]:
    """(ticket, metric, kind, moment due), from an SlaEvent or its JSON."""
    if isinstance(event, dict):
        data, moment = event["data"], datetime.fromisoformat(event["occurred_at"])
        ticket_id, event_type = event["ticket_id"], event["event_type"]
    else:
        data, moment = event.data.model_dump(mode="json"), event.occurred_at
        ticket_id, event_type = event.ticket_id, event.event_type
    kind = "breach" if event_type == "sla.breached" else f"warning:{data['threshold']:g}"
    return ticket_id, data["metric"], kind, moment


def expected_alarms(events: list[tuple[str, bytes]], until: datetime) -> dict[str, tuple[str, str, str, datetime]]:
    """{event id: alarm} of every alarm the pure clock code raises by `until` from the same ticket events."""
    keeper = Timekeeper(Agreements.with_defaults())
    decided = []
    for _, raw in events:
        decided.extend(keeper.handle(decode_ticket_event(raw), 0))
    decided.extend(keeper.tick(until))
    return {str(e.event_id): alarm_key(e) for e in decided if e.event_type in ALARMS and e.occurred_at <= until}


def judge(
    published: list[tuple[int, dict[str, Any]]],
    expected: dict[str, tuple],
    run: tuple[datetime, datetime],
    restart_window: tuple[float, float],
) -> dict[str, Any]:
    """Lateness of the alarms due during the run (those due before it, when their backdated ticket was created,
    are raised at once and late by design); missed, unexpected and doubled among every alarm due by its end."""
    ids = Counter(event["event_id"] for _, event in published)
    alarms = [(stamp, event) for stamp, event in published if event["event_type"] in ALARMS]
    ids_per_alarm: dict[tuple, set[str]] = {}
    lateness: dict[str, list[float]] = {"all": [], "outside": [], "inside": []}
    seen = set()
    for stamp, event in alarms:
        key = alarm_key(event)
        ids_per_alarm.setdefault(key, set()).add(event["event_id"])
        if key[3] > run[1]:
            continue
        seen.add(event["event_id"])
        if key[3] < run[0]:
            continue
        late, due = stamp / 1000 - key[3].timestamp(), key[3].timestamp()
        lateness["all"].append(late)
        lateness["inside" if restart_window[0] <= due <= restart_window[1] else "outside"].append(late)
    return {
        "alarms_expected": len(expected),
        "alarms_published": len(seen),
        "alarms_due_during_run": len(lateness["all"]),
        "alarms_due_in_restart_window": len(lateness["inside"]),
        "lateness_s": {name: percentiles(values) for name, values in lateness.items()},
        "missed": len(set(expected) - seen),
        "unexpected": len(seen - set(expected)),
        "doubled": sum(1 for count in ids.values() if count > 1)
        + sum(len(found) - 1 for found in ids_per_alarm.values()),
    }


def run(args: argparse.Namespace, bootstrap: str, scratch: Path) -> dict[str, Any]:
    asyncio.run(ensure_topics(bootstrap))
    dev_keys, api_keys = write_dev_keys(scratch / "keys")
    admin = json.loads(dev_keys.read_text())["admin"]
    group = f"bench-sla-{os.getpid()}"
    workers = [
        SlaWorker(bootstrap, api_keys, admin, scratch / f"sla-{n}.log", group, scratch / f"state-{n}", args.session)
        for n in range(2 if args.restart == "standby" else 1)
    ]
    try:
        for worker in workers:
            worker.start_and_wait()
        rss_empty = sum(procfs.rss_bytes(worker.pid) for worker in workers)
        first_due = time.time() + args.lead
        tickets = backdated_tickets(args.tickets, datetime.fromtimestamp(first_due, UTC), args.seconds)

        def cpu() -> float:
            return sum(procfs.cpu_seconds(worker.pid) for worker in workers if worker.process.running())

        cpu0, began = cpu(), time.time()
        asyncio.run(produce_tickets(bootstrap, tickets))
        wait_for(lambda: hold(workers, args.tickets), 600, "the workers hold every ticket")
        load_s = time.time() - began  # from the first send: the worker reads while they are produced
        load_cpu = cpu() - cpu0
        rss_loaded = sum(procfs.rss_bytes(worker.pid) for worker in workers)
        print(f"{args.tickets:,} ticket.created held after {load_s:.1f} s ({load_cpu:.1f} CPU s)", flush=True)
        if time.time() > first_due:
            print(f"the first alarms were due {time.time() - first_due:.1f} s before that: raise --lead", flush=True)
        time.sleep(max(0.0, first_due - time.time()))

        end = first_due + args.seconds
        cpu1 = cpu()

        async def offer_and_restart() -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
            at = first_due + args.seconds / 2
            restarting = asyncio.to_thread(restart, workers, args.restart, at, args.tickets)
            offering = offer_follow_ups(bootstrap, [ticket_id for ticket_id, _ in tickets], args.rate, end)
            return await asyncio.gather(offering, restarting)

        follow_ups, restarted = asyncio.run(offer_and_restart())
        print(f"{args.restart}: takeover in {restarted['takeover_s']} s", flush=True)
        time.sleep(max(0.0, end + 2 - time.time()))  # the last alarms' batch
        cpu_offer = restarted["cpu_s_before"] - cpu1 + cpu()
        rss_after = procfs.rss_bytes(workers[-1].pid)

        span = (datetime.fromtimestamp(first_due, UTC), datetime.fromtimestamp(end, UTC))
        expected = expected_alarms(tickets + follow_ups, span[1])
        clocks = 2 * args.tickets  # first response and resolution
        window = (restarted["signalled_at"], restarted["ready_at"])
        deadline = time.time() + 120
        while True:  # the new process may still be raising what fell due while it took over
            verdict = judge(asyncio.run(read_sla_events(bootstrap)), expected, span, window)
            if not verdict["missed"] or time.time() > deadline:
                break
            time.sleep(2)
    finally:
        for worker in workers:
            worker.process.stop()
    return {
        "tickets": args.tickets,
        "running_clocks": clocks,
        "seconds": args.seconds,
        "follow_ups_per_s_offered": args.rate,
        "follow_ups_offered": len(follow_ups),
        "restart": args.restart,
        "processes": len(workers),
        "session_timeout_s": args.session,
        **verdict,
        "takeover_s": restarted["takeover_s"],
        "old_process_exit_s": restarted["exit_s"],
        "tickets_loaded_from_the_store": restarted["tickets_restored"],
        "ticket_events_replayed": restarted["events_replayed"],
        "load": {
            "ticket_created_events": args.tickets,
            "seconds_until_held": round(load_s, 1),
            "events_per_s_wall": round(args.tickets / load_s),
            "worker_cpu_s": round(load_cpu, 1),
            "events_per_cpu_s": round(args.tickets / load_cpu),
        },
        "run": {
            "worker_cpu_s_every_process": round(cpu_offer, 1),
            "worker_cores_busy": round(cpu_offer / (args.seconds + 2), 2),
        },
        "rss_bytes": {"empty": rss_empty, "loaded": rss_loaded, "after_restart": rss_after},
        "rss_bytes_per_clock": round((rss_loaded - rss_empty) / clocks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=60, help="the run: alarms fall due over it")
    parser.add_argument("--rate", type=int, default=1000, help="follow-up ticket events/s offered during the run")
    parser.add_argument(
        "--restart",
        choices=("kill", "term", "standby"),
        default="kill",
        help="kill -9 the process and start it again, or SIGTERM; standby: two processes, one killed with -9 and its "
        "partitions taken over by the other",
    )
    parser.add_argument("--session", type=float, default=10, help="the sla group's session timeout, seconds")
    parser.add_argument("--lead", type=float, default=60, help="seconds from producing the tickets to the first alarm")
    parser.add_argument("--logs", type=Path, help="a folder to keep the sla processes' logs in (else they go)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # stop the worker on the way out
    with tempfile.TemporaryDirectory(prefix="bench-sla-restart-") as scratch, contextlib.ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or stack.enter_context(
            LocalKafka(Path(scratch) / "kafka")).bootstrap_servers  # fmt: skip
        try:
            results = {
                **run(args, bootstrap, Path(scratch)),
                "measured_at": datetime.now(UTC).isoformat("T", "seconds"),
            }
        finally:
            if args.logs is not None:
                args.logs.mkdir(parents=True, exist_ok=True)
                for log in Path(scratch).glob("sla-*.log"):
                    shutil.copy(log, args.logs / log.name)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
