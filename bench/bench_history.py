"""State that grows with history, or not: how long an intake (and an sla) process takes to be ready, and how much
memory it holds, with N tickets in tickets.events (each created, given two worklogs and closed long ago: 4 events).

    .venv/bin/python -m bench history      (or bench/bench_history.py [--tickets 100000,1000000]
                                                                       [--services intake,sla,assignment])

For each N, on a fresh local broker, `python -m intake` (then `python -m sla`) is started as production starts it
(its own process, a STATE_DIR) and timed from exec until /readyz answers 200, with its RSS then:
  (a) first start: an empty store and an empty changelog, as on upgrading from a version without them: it reads the
      whole of tickets.events (what every start did before issue #16), and writes its changelog (intake.tickets,
      sla.clocks);
  (b) restart: the same process again on the same STATE_DIR: it reads only past its store's checkpoint;
  (c) new machine: an empty STATE_DIR, the changelog written by (a): it restores from the changelog only.
After intake's (b), GET /v1/tickets (pages of 50, filtered as a desk filters, followed by cursor) is timed on the
restarted process. `--services assignment` (not by default: its first start routes and assigns the whole history,
some 7 minutes at 1M) writes a routing rule for the history's category and 20 technicians on shift to
assignment.by_team first; its (a) is timed until every ticket is assigned, its (b) resumes from the checkpoint of
its desk, and its (c) reads the whole team log (the team log is its changelog). Prints a table with the growth from
the smallest N to the largest; writes bench/results/history.json. Up to --baseline-up-to tickets, the intake of
--baseline (a commit before the local store, run from a git worktree) is started first on the same log, for the
figures before (sla's are in docs/benchmarks.md: it held every ticket's clocks in memory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # deploy/ is not an installed package

import bench  # noqa: E402,F401  (this tree's code first: see bench/__init__.py)
from assignment.records import team_key  # noqa: E402
from bench.metrics import scraped  # noqa: E402
from bench.procfs import rss_bytes  # noqa: E402
from deploy.kafka.launcher import LocalKafka, free_ports  # noqa: E402
from ticketstream_shared.contract import (  # noqa: E402
    TicketCreated,
    TicketStatusChanged,
    WorklogRecorded,
    encode,
)
from ticketstream_shared.contract.assignment import (  # noqa: E402
    CategoryRouted,
    ShiftChanged,
    TeamLogEvent,
    TechnicianProfiled,
)
from ticketstream_shared.contract.topics import (  # noqa: E402
    ASSIGNMENT_BY_TEAM,
    INTAKE_TICKETS,
    SLA_CLOCKS,
    TICKETS_EVENTS,
)
from ticketstream_shared.runtime.auth import write_dev_keys  # noqa: E402
from ticketstream_shared.runtime.kafka import make_producer  # noqa: E402
from ticketstream_shared.runtime.kafka_admin import ensure_topics  # noqa: E402
from ticketstream_shared.runtime.settings import KafkaSettings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "history.json"
LONG_AGO = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
TEMPLATE_ID = "TICKET-TEMPLATE-0000"
EVENT_ID = "00000000-0000-4000-8000-00000000000"  # + one digit: the event's index in the ticket


def ticket_template() -> list[bytes]:
    """One closed ticket's four events as the contract encodes them, with placeholders for the ids."""

    def envelope(version: int, minutes: int) -> dict[str, Any]:
        return {
            "event_id": f"{EVENT_ID}{version}",
            "occurred_at": LONG_AGO + timedelta(minutes=minutes),
            "ticket_id": TEMPLATE_ID,
            "client_id": "acme",
            "aggregate_version": version,
            "producer": "intake",
            "correlation_id": "bench-history",
        }

    created = {"requester_id": "req-1", "title": "Printer jams", "category": "hardware", "priority": "P3"}
    worklog = {"technician_id": "tech-1", "minutes": 15, "billable": True, "performed_at": LONG_AGO, "note": "Fixed."}
    events = [
        TicketCreated.model_validate({**envelope(1, 0), "data": created}),
        WorklogRecorded.model_validate({**envelope(2, 10), "data": {**worklog, "worklog_id": uuid.uuid4()}}),
        WorklogRecorded.model_validate({**envelope(3, 20), "data": {**worklog, "worklog_id": uuid.uuid4()}}),
        TicketStatusChanged.model_validate({**envelope(4, 30), "data": {"from_status": "new", "to_status": "closed"}}),
    ]
    return [encode(event) for event in events]


async def write_history(bootstrap: str, tickets: int) -> float:
    """Append `tickets` closed tickets to tickets.events; returns seconds taken."""
    template = ticket_template()
    producer = make_producer(KafkaSettings(kafka_bootstrap_servers=bootstrap), "bench-history", linger_ms=20,
                             max_batch_size=512 * 1024)  # fmt: skip
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for number in range(tickets):
            ticket_id = str(uuid.uuid4())
            key = ticket_id.encode()
            for index, raw in enumerate(template):
                value = raw.replace(TEMPLATE_ID.encode(), key).replace(
                    f"{EVENT_ID}{index + 1}".encode(), str(uuid.uuid4()).encode()
                )
                pending.append(await producer.send(TICKETS_EVENTS, value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
            if number and number % 200_000 == 0:
                print(f"    {number} tickets written", flush=True)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


#: What says a service's first start has gone through the whole history: a counter of its /metrics, with the
#: label that names what is counted, reaching the number of tickets. intake and sla write every ticket to their
#: changelog; assignment assigns every ticket once.
SETTLED = {
    "intake": ("ticketstream_changelog_records_written_total", INTAKE_TICKETS),
    "sla": ("ticketstream_changelog_records_written_total", SLA_CLOCKS),
    "assignment": ("ticketstream_assignment_decisions_total", "assignment.assigned"),
}
#: The team every ticket of the history goes to, and its technicians: enough room for every ticket open at once.
TEAM, TECHNICIANS, CAPACITY = "desk-hardware", 20, 1000


async def write_roster(bootstrap: str) -> None:
    """The roster assignment needs to assign the history's tickets: a rule sending their category to TEAM, and
    TECHNICIANS on shift there (written to the team log, as the roster API does)."""
    envelope = {"occurred_at": LONG_AGO, "producer": "bench-history", "correlation_id": "bench-history"}
    records: list[TeamLogEvent] = [
        CategoryRouted(
            event_id=uuid.uuid4(), **envelope, data={"category": "hardware", "team": TEAM, "skill": "hardware"}
        )  # fmt: skip
    ]
    for number in range(TECHNICIANS):
        technician = f"tech-{number:02d}"
        profile = {"technician_id": technician, "name": technician, "team": TEAM, "tier": 1, "capacity": CAPACITY}
        records.append(TechnicianProfiled(event_id=uuid.uuid4(), **envelope, data=profile))
        shift = {"technician_id": technician, "team": TEAM, "on_shift": True}
        records.append(ShiftChanged(event_id=uuid.uuid4(), **envelope, data=shift))
    producer = make_producer(KafkaSettings(kafka_bootstrap_servers=bootstrap), "bench-history")
    await producer.start()
    try:
        for record in records:
            await producer.send(ASSIGNMENT_BY_TEAM, encode(record), key=team_key(record).encode())
        await producer.flush()
    finally:
        await producer.stop()


def start_service(
    service: str, bootstrap: str, api_keys: Path, state_dir: Path, log: Path, checkout: Path = ROOT
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m <service>` from `checkout` (this one, or a baseline's worktree)."""
    port = free_ports(1)[0]
    environment = {
        **os.environ,
        "PYTHONPATH": f"{checkout / 'services'}:{checkout / 'shared'}",
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "API_KEYS_FILE": str(api_keys),
        "HTTP_PORT": str(port),
        "STATE_DIR": str(state_dir),
        "LOG_LEVEL": "WARNING",
    }
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", service], cwd=checkout, env=environment, stdout=out,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def until_ready(process: subprocess.Popen[bytes], url: str, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # polling cadence of the readiness probe, not a wait for anything
    raise TimeoutError(f"{process.args} not ready after {timeout_s} s")


def counted(url: str, admin: str, metric: str, label: str) -> float:
    """The first sample of `metric` with a label of value `label` (0 before it is first counted)."""
    found = (
        sample.value for sample in scraped(url, admin) if sample.name == metric and label in sample.labels.values()
    )
    return next(found, 0.0)


def until_settled(url: str, admin: str, service: str, tickets: int, timeout_s: float) -> float:
    """Wait for the first start to have gone through every ticket (`SETTLED`), and for the count to settle."""
    metric, label = SETTLED[service]
    started, last = time.monotonic(), -1.0
    while time.monotonic() - started < timeout_s:
        done = counted(url, admin, metric, label)
        if done >= tickets and done == last:
            return done
        last = done
        time.sleep(2)  # polling cadence; two equal readings 2 s apart: the service has flushed it all
    raise TimeoutError(f"{service} did not go through the history in time")


def listing_latency(url: str, admin: str, requests: int = 300) -> dict[str, float]:
    """GET /v1/tickets, a page of 50, with the filters a desk uses and pages followed by cursor: p50 and p99 in ms."""
    headers = {"Authorization": f"Bearer {admin}"}
    shapes: list[dict[str, str]] = [{}, {"client_id": "acme"}, {"status": "closed"},
                                    {"client_id": "acme", "status": "closed"}, {"client_id": "acme", "priority": "P1"},
                                    {"status": "open"}, {"assignee_id": "tech-1"}]  # fmt: skip
    took: list[float] = []
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        while len(took) < requests:
            params = {**shapes[len(took) % len(shapes)], "limit": "50"}
            for _ in range(5):  # the first page and four more by cursor
                started = time.perf_counter()
                page = client.get("/v1/tickets", params=params)
                took.append(time.perf_counter() - started)
                page.raise_for_status()
                if not page.json()["next_cursor"]:
                    break
                params["cursor"] = page.json()["next_cursor"]
    took.sort()
    return {"p50_ms": round(took[len(took) // 2] * 1000, 1), "p99_ms": round(took[int(len(took) * 0.99)] * 1000, 1)}


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def timed_start(
    service: str, bootstrap: str, keys: Path, state: Path, log: Path, timeout_s: float, checkout: Path = ROOT
) -> tuple[dict[str, float], Any]:
    process, url = start_service(service, bootstrap, keys, state, log, checkout)
    seconds = until_ready(process, url, timeout_s)
    figures = {"ready_s": round(seconds, 1), "rss_mb": round(rss_bytes(process.pid) / 2**20)}
    return figures, (process, url)


def du_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def baseline_start(bootstrap: str, keys: Path, scratch: Path, log: Path, timeout_s: float, ref: str) -> dict[str, Any]:
    """The intake of commit `ref` (before the local store) started on the same log: every start reads it all."""
    checkout = scratch / "baseline"
    if not checkout.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(checkout), ref], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
    try:
        figures, (process, _) = timed_start(
            "intake", bootstrap, keys, scratch / "state-baseline", log, timeout_s, checkout
        )
        stop(process)
        return {"ref": ref, **figures}
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(checkout)], cwd=ROOT, capture_output=True)


def run(tickets: int, scratch: Path, baseline: str | None, services: list[str]) -> dict[str, Any]:
    with LocalKafka(scratch / "kafka") as kafka:
        bootstrap = kafka.bootstrap_servers
        asyncio.run(ensure_topics(bootstrap))
        dev_keys, keys = write_dev_keys(scratch / "keys")
        admin = json.loads(dev_keys.read_text())["admin"]
        written_s = asyncio.run(write_history(bootstrap, tickets))
        print(f"  {tickets} tickets ({4 * tickets} events) written in {written_s:.0f} s", flush=True)
        timeout_s = 60 + tickets * 0.004
        measured: dict[str, Any] = {"events": 4 * tickets}
        if baseline is not None and "intake" in services:
            log = scratch / "intake.log"
            measured["baseline"] = baseline_start(bootstrap, keys, scratch, log, timeout_s, baseline)
            print(f"  baseline {baseline}, intake, any start: {measured['baseline']}", flush=True)
        for service in services:
            measured[service] = phases(service, bootstrap, keys, admin, scratch, tickets, timeout_s)
        return measured


def phases(
    service: str, bootstrap: str, keys: Path, admin: str, scratch: Path, tickets: int, timeout_s: float
) -> dict[str, Any]:
    log, state = scratch / f"{service}.log", scratch / f"{service}-state"
    if service == "assignment":
        asyncio.run(write_roster(bootstrap))
    began = time.monotonic()
    first, (process, url) = timed_start(service, bootstrap, keys, state / "a", log, timeout_s)
    first["settled_count"] = until_settled(url, admin, service, tickets, timeout_s)
    first["settled_s"] = round(time.monotonic() - began, 1)
    stop(process)
    first["store_mb"] = du_mb(state / "a")
    print(f"  {service} (a) first start, whole history: {first}", flush=True)

    restart, (process, url) = timed_start(service, bootstrap, keys, state / "a", log, timeout_s)
    if service == "intake":
        restart["listing"] = listing_latency(url, admin)
        restart["rss_mb_after_listing"] = round(rss_bytes(process.pid) / 2**20)
    stop(process)
    print(f"  {service} (b) restart on its store: {restart}", flush=True)

    new_machine, (process, _) = timed_start(service, bootstrap, keys, state / "c", log, timeout_s)
    stop(process)
    # assignment has no changelog of its own: a new machine reads the whole team log
    source = "the whole team log" if service == "assignment" else "the changelog"
    print(f"  {service} (c) new machine, from {source}: {new_machine}", flush=True)
    return {"first_start": first, "restart": restart, "new_machine": new_machine}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", default="100000,1000000", help="comma-separated ticket counts")
    parser.add_argument("--services", default="intake,sla", help="comma-separated: intake, sla, assignment")
    parser.add_argument("--baseline", default="3bdafc6", help="commit whose intake is the baseline ('' for none)")
    parser.add_argument("--baseline-up-to", type=int, default=200_000,
                        help="the baseline only up to this many tickets (it holds ~6 KB each in memory)")  # fmt: skip
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    sizes = [int(size) for size in args.tickets.split(",")]
    measured: dict[int, dict[str, Any]] = {}
    for tickets in sizes:
        print(f"--- {tickets} tickets ---", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-history-") as scratch:
            baseline = args.baseline if args.baseline and tickets <= args.baseline_up_to else None
            measured[tickets] = run(tickets, Path(scratch), baseline, args.services.split(","))
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "tickets": measured,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'tickets':>9} {'service':<7} {'phase':<28} {'ready s':>8} {'RSS MB':>7}")
    for tickets, figures in measured.items():
        for service in args.services.split(","):
            for phase in ("first_start", "restart", "new_machine"):
                done = figures[service][phase]
                print(f"{tickets:>9} {service:<7} {phase:<28} {done['ready_s']:>8} {done['rss_mb']:>7}")
        if "baseline" in figures:
            base = figures["baseline"]
            phase = f"baseline {base['ref']}, any start"
            print(f"{tickets:>9} {'intake':<7} {phase:<28} {base['ready_s']:>8} {base['rss_mb']:>7}")
        if "intake" in figures:
            print(f"{tickets:>9} listing p50/p99 ms: {figures['intake']['restart']['listing']}")
    if len(sizes) > 1:
        small, large = measured[sizes[0]], measured[sizes[-1]]
        for service in args.services.split(","):
            for phase in ("first_start", "restart", "new_machine"):
                ratio = large[service][phase]["ready_s"] / max(small[service][phase]["ready_s"], 0.1)
                memory = large[service][phase]["rss_mb"] / max(small[service][phase]["rss_mb"], 1)
                print(f"growth {sizes[0]} -> {sizes[-1]}, {service} {phase}: ready x{ratio:.1f}, RSS x{memory:.1f}")


if __name__ == "__main__":
    main()
