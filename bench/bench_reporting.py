"""Reporting benchmark: how fast tickets.events reaches the reporting tables, and how fresh the report is.

    .venv/bin/python bench/bench_reporting.py [--events 200000] [--latency-samples 50]

On a broker started here by LocalKafka and a fresh chDB directory, it measures:
  (a) projection throughput: EVENTS events produced first, then the reporting service (built by its composition
      root, in this process) consumes, decodes, processes and inserts them all; the clock runs from the moment its
      consumer holds its partitions until its group has committed the last offset (commits follow inserts);
      with the cores the service used meanwhile, in all and by its event loop and its ClickHouse thread (/proc).
      Baselines from the same run: consuming alone (aiokafka getmany) and decoding + processing alone (in memory).
  (b) event-to-report latency: one worklog produced, the hours-per-client report polled until it counts it;
      once with the default batch wait and once with a short one, to show what the wait costs.
  (c) hours per client over WORKLOG_ROWS synthetic worklogs (50 clients, 2026; 2% corrected, 1% voided), generated
      by SQL in a fresh chDB, for March and for the year: from the worklog ledger as inserted and merged, from
      worklogs FINAL (before the ledger), and on PostgreSQL (Debian's server, started here; installed with apt-get
      if missing) over the same current worklogs, loaded with COPY. All answers must be equal. And the projector's
      lookup of a batch's newest ledger rows (6 and 12,000 worklogs, new and held) over that ledger: by worklog, as
      the service reads it, and reading the whole worklog_id column, as before migration 015.
  (d) rebuild: `python -m reporting rebuild`'s function, with the service stopped, over everything (a) and (b)
      wrote: every topic replayed into fresh tables through the service's own projector, then swapped in.
Prints a table and writes bench/results/reporting.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # deploy/ is not an installed package

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402
from aiokafka.errors import GroupCoordinatorNotAvailableError  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

import bench  # noqa: E402,F401  (this tree's code first: see bench/__init__.py)
from bench import procfs  # noqa: E402
from deploy.kafka.launcher import LocalKafka  # noqa: E402
from intake.domain import whose_words  # noqa: E402
from reporting.app import build_app, tune_garbage_collection  # noqa: E402
from reporting.inbox import decoders  # noqa: E402
from reporting.ledger import LedgerRow  # noqa: E402
from reporting.rebuild import rebuild  # noqa: E402
from reporting.reports import HoursPerClientQuery  # noqa: E402
from reporting.settings import ReportingSettings  # noqa: E402
from reporting.warehouse import _NEWEST_LEDGER_ROWS, PROJECTION_SECONDS, Warehouse  # noqa: E402
from ticketstream_shared.contract import (  # noqa: E402
    CommentAdded,
    Role,
    TicketCreated,
    TicketEvent,
    TicketStatusChanged,
    WorklogRecorded,
    encode,
)
from ticketstream_shared.contract.personal import map_personal  # noqa: E402
from ticketstream_shared.contract.topics import TICKET_PARTITIONS, TICKETS_EVENTS  # noqa: E402
from ticketstream_shared.privacy import KeyRing  # noqa: E402
from ticketstream_shared.runtime.auth import ApiKeyEntry, ApiKeys, hash_key  # noqa: E402
from ticketstream_shared.runtime.kafka import make_producer  # noqa: E402
from ticketstream_shared.runtime.kafka_admin import ensure_topics  # noqa: E402
from ticketstream_shared.sealing import SecretBox  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "reporting.json"
KEY = "bench-manager"
KEYS = ApiKeys([ApiKeyEntry(name="bench", sha256=hash_key(KEY), role=Role.MANAGER)])
HEADERS = {"Authorization": f"Bearer {KEY}"}
REPORT = "/v1/reports/hours-per-client"
DAY = datetime(2026, 3, 2, 8, tzinfo=UTC)
CLIENTS = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell")
WORKLOGS_PER_TICKET = 6
#: created, in progress, 6 worklogs, a comment, resolved.
EVENTS_PER_TICKET = WORKLOGS_PER_TICKET + 4
PARTITIONS = [TopicPartition(TICKETS_EVENTS, number) for number in range(TICKET_PARTITIONS)]


def _envelope(ticket_id: str, client_id: str, version: int, at: datetime) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "occurred_at": at,
        "ticket_id": ticket_id,
        "client_id": client_id,
        "aggregate_version": version,
        "producer": "intake",
        "correlation_id": f"bench-{ticket_id}",
    }


def a_ticket_day(number: int) -> Iterator[TicketEvent]:
    """One ticket's life in EVENTS_PER_TICKET events: opened, worked on six times, answered, resolved."""
    ticket, client = f"T-{number}", CLIENTS[number % len(CLIENTS)]
    at = DAY + timedelta(minutes=number % 600)
    yield TicketCreated.model_validate(
        {
            **_envelope(ticket, client, 1, at),
            "data": {"requester_id": f"req-{number % 97}", "title": "VPN drops every hour", "category": "network",
                     "priority": "P3", "description": "Since the update the VPN client disconnects hourly."},
        }
    )  # fmt: skip
    status = {"from_status": "new", "to_status": "in_progress"}
    yield TicketStatusChanged.model_validate({**_envelope(ticket, client, 2, at), "data": status})
    for version in range(3, 3 + WORKLOGS_PER_TICKET):
        yield WorklogRecorded.model_validate(
            {
                **_envelope(ticket, client, version, at),
                "data": {"worklog_id": uuid.uuid4(), "technician_id": f"tech-{number % 13}", "minutes": 15,
                         "billable": version % 2 == 0, "performed_at": at, "note": "Checked the tunnel logs."},
            }
        )  # fmt: skip
    comment = {"comment_id": uuid.uuid4(), "author_id": "tech-1", "author_role": "technician",
               "body": "Rolled back the client; please confirm.", "visibility": "public"}  # fmt: skip
    yield CommentAdded.model_validate({**_envelope(ticket, client, 3 + WORKLOGS_PER_TICKET, at), "data": comment})
    resolved = {"from_status": "in_progress", "to_status": "resolved"}
    yield TicketStatusChanged.model_validate(
        {**_envelope(ticket, client, 4 + WORKLOGS_PER_TICKET, at), "data": resolved}
    )


def sealed(events: list[TicketEvent]) -> list[TicketEvent]:
    """The events as intake writes them with a master key: each person's words sealed under a data key of theirs."""
    ring, key_of, requester_of = KeyRing(SecretBox([os.urandom(32)])), {}, {}
    sealed_events = []
    for event in events:
        if isinstance(event, TicketCreated):
            requester_of[event.ticket_id] = event.data.requester_id
        person = whose_words(event, requester_of[event.ticket_id])
        if person not in key_of:
            ring.apply(record := ring.issue(person, DAY))
            key_of[person] = record.key_id
        sealed_events.append(map_personal(event, lambda text, key=key_of[person]: ring.seal(text, key)))
    return sealed_events


async def produce(settings: ReportingSettings, messages: list[tuple[bytes, bytes]]) -> float:
    """Send all messages, keeping many in flight; returns messages per second."""
    producer = make_producer(settings, client_id="bench-intake", linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        for first in range(0, len(messages), 10_000):
            sent = [await producer.send(TICKETS_EVENTS, value=v, key=k) for k, v in messages[first : first + 10_000]]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return len(messages) / (time.perf_counter() - started)


async def consume_only(bootstrap: str, expected: int) -> float:
    """Baseline: read every message of tickets.events with aiokafka getmany, doing nothing with it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(PARTITIONS)
        await consumer.seek_to_beginning(*PARTITIONS)
        started, seen = time.perf_counter(), 0
        while seen < expected:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=20_000)).values():
                seen += len(records)
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def validate_only(messages: list[tuple[bytes, bytes]]) -> float:
    """Baseline: the Python part every event costs (validation against the contract, reporting's decoder) on
    messages in memory; ClickHouse's views do the rest, and Python the worklog ledger."""
    decode = decoders()[TICKETS_EVENTS]
    started = time.perf_counter()
    for _, value in messages:
        decode(value)
    return len(messages) / (time.perf_counter() - started)


class CommitWatch:
    """How far a consumer group has committed, with its clients kept open so that watching costs little."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self._group = group
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._reader = AIOKafkaConsumer(bootstrap_servers=bootstrap)

    @classmethod
    async def started(cls, bootstrap: str, group: str) -> CommitWatch:
        watch = cls(bootstrap, group)
        await watch._admin.start()
        await watch._reader.start()
        return watch

    async def caught_up(self) -> bool:
        """Whether the group has committed every message of tickets.events there is."""
        try:
            committed = await self._admin.list_consumer_group_offsets(self._group)
        except GroupCoordinatorNotAvailableError:  # the group's first moments on a fresh broker
            return False
        ends = await self._reader.end_offsets(PARTITIONS)
        return all(p in committed and committed[p].offset == ends[p] for p in PARTITIONS)

    async def stop(self) -> None:
        await self._reader.stop()
        await self._admin.close()


def wait_until(probe: Any, timeout_s: float, interval_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(interval_s)
    raise TimeoutError(f"not within {timeout_s}s: {what}")


def cpu_by_thread() -> dict[str, float]:
    """CPU seconds used so far by this process's event loop (the test client's portal thread runs the service), by
    its ClickHouse thread (the warehouse's calls, chDB's work on them included), and in all, as /proc counts them:
    the CPU each used, not the share of a profiler's samples in which it was seen busy."""
    threads = {thread.name: thread.native_id for thread in threading.enumerate()}
    used = {"process": procfs.cpu_seconds(os.getpid())}
    for role, prefix in (("event loop", "asyncio-portal"), ("ClickHouse thread", "clickhouse")):
        native_ids = [native_id for name, native_id in threads.items() if name.startswith(prefix) and native_id]
        used[role] = sum(procfs.cpu_seconds(os.getpid(), native_id) for native_id in native_ids)
    return used


def project_all(settings: ReportingSettings, expected_hours: float) -> dict[str, float]:
    """(a): time the service from holding its partitions to having committed the last event."""
    with asyncio.Runner() as runner:
        watch = runner.run(CommitWatch.started(settings.kafka_bootstrap_servers, settings.consumer_group))
        with TestClient(build_app(settings, KEYS)) as http:
            wait_until(lambda: http.get("/readyz").status_code == 200, 60, 0.01, "the service ready")
            started, cpu_before = time.perf_counter(), cpu_by_thread()
            wait_until(lambda: runner.run(watch.caught_up()), 600, 0.25, "projection")
            elapsed = time.perf_counter() - started
            cores = {
                f"{role} cores": round((used - cpu_before[role]) / elapsed, 2) for role, used in cpu_by_thread().items()
            }
            inserting = sum(  # every part of a batch ClickHouse works on, as warehouse.py labels them
                sample.value
                for family in PROJECTION_SECONDS.collect()
                for sample in family.samples
                if sample.name.endswith("_sum")
            )
            figures = report_figures(http, expected_hours)
        runner.run(watch.stop())
    return {"seconds": elapsed, "inserting_seconds": inserting, **cores, **figures}


def report_figures(http: TestClient, expected_hours: float) -> dict[str, float]:
    """Check that the report adds up after the projection, then time the by-day query over everything."""
    rows = http.get(REPORT, params={"from": "2026-03-01", "to": "2026-03-31"}, headers=HEADERS).json()["rows"]
    total = round(sum(row["hours"] for row in rows), 2)
    if total != expected_hours:
        raise AssertionError(f"the report shows {total} hours, {expected_hours} were recorded")
    query_ms = []
    for _ in range(20):
        began = time.perf_counter()
        params = {"from": "2026-03-01", "to": "2026-03-31", "granularity": "day"}
        assert http.get(REPORT, params=params, headers=HEADERS).status_code == 200
        query_ms.append((time.perf_counter() - began) * 1000)
    return {"report_query_p50_ms": statistics.median(query_ms)}


def latency(settings: ReportingSettings, samples: int) -> dict[str, float]:
    """(b): produce one worklog at a time and poll the report until it is counted. The service joins the group
    that has projected everything already, so each worklog is the only news it has."""
    client = f"latency-{uuid.uuid4().hex[:6]}"
    ticket = f"L-{client}"
    params = {"from": "2026-03-01", "to": "2026-03-31", "client_id": client}
    seconds = []
    with TestClient(build_app(settings, KEYS)) as http, asyncio.Runner() as runner:
        wait_until(lambda: http.get("/readyz").status_code == 200, 60, 0.01, "the service ready")
        producer = runner.run(started_producer(settings))

        def counted() -> int:
            rows = http.get(REPORT, params=params, headers=HEADERS).json()["rows"]
            return rows[0]["worklogs"] if rows else 0

        try:
            for sample in range(1, samples + 1):
                worklog = WorklogRecorded.model_validate(
                    {
                        **_envelope(ticket, client, sample, DAY),
                        "data": {"worklog_id": uuid.uuid4(), "technician_id": "tech-1", "minutes": 5,
                                 "billable": True, "performed_at": DAY},
                    }
                )  # fmt: skip
                began = time.perf_counter()
                runner.run(producer.send_and_wait(TICKETS_EVENTS, value=encode(worklog), key=ticket.encode()))
                wait_until(lambda s=sample: counted() >= s, 30, 0.005, f"worklog {sample} in the report")
                seconds.append(time.perf_counter() - began)
        finally:
            runner.run(producer.stop())
    seconds.sort()
    return {
        "p50_ms": 1000 * statistics.median(seconds),
        "p99_ms": 1000 * seconds[min(len(seconds) - 1, round(0.99 * (len(seconds) - 1)))],
        "max_ms": 1000 * seconds[-1],
    }


#: Worklog numbers whose worklog is corrected (new minutes, one day later) and whose worklog is voided.
CORRECTED, VOIDED = "number % 50 = 0", "number % 100 = 1"
LEDGER_COLUMNS = ", ".join(LedgerRow._fields)
#: The worklogs table's columns (a worklog's split into business hours is in the ledger only).
WORKLOG_FIELDS = [name for name in LedgerRow._fields if name not in {"sign", "business_minutes"}] + ["voided"]
WORKLOG_COLUMNS = ", ".join(WORKLOG_FIELDS)


def synthetic_worklog(rows: int, *, corrected: bool = False) -> dict[str, str]:
    """SQL for the values of worklog `number` of `rows`: six per ticket, a ticket's client (of 50) and technician
    (of 200) fixed, spread evenly over 2026; as recorded, or as corrected."""
    minutes = "20 + number % 120" if corrected else "5 + number % 120"
    one_day_later = " + toIntervalDay(1)" if corrected else ""
    return {
        "worklog_id": "reinterpretAsUUID(sipHash128(number))",
        "ticket_id": "concat('T-', toString(intDiv(number, 6)))",
        "client_id": "concat('client-', toString(intDiv(number, 6) % 50))",
        "technician_id": "concat('tech-', toString(intDiv(number, 6) % 200))",
        "minutes": minutes,
        "business_minutes": f"({minutes}) * (number % 3 > 0)",
        "billable": "number % 4 > 0",
        "performed_at": "toDateTime64('2026-01-01 00:00:00', 3, 'UTC') "
        f"+ toIntervalSecond(intDiv(number * 31536000, {rows})){one_day_later}",
        "event_id": "generateUUIDv4()",
        "partition": "toUInt16(intDiv(number, 6) % 12)",
        "offset": f"number + {rows if corrected else 0}",
    }


def synthetic_statements(rows: int) -> list[str]:
    """The worklogs table and the worklog ledger of `rows` worklogs recorded at version 2, of which 2% corrected and
    1% voided at version 3, as the projector would have written them (see reporting/ledger.py)."""
    recorded, corrected = synthetic_worklog(rows), synthetic_worklog(rows, corrected=True)

    def worklogs(values: dict[str, str], voided: bool, where: str = "true") -> str:
        columns = {**values, "voided": str(voided).lower(), "aggregate_version": "3" if where != "true" else "2"}
        select = ", ".join(columns[name] for name in WORKLOG_FIELDS)
        return f"INSERT INTO worklogs ({WORKLOG_COLUMNS}) SELECT {select} FROM numbers({rows}) WHERE {where}"

    def ledger(values: dict[str, str], sign: int, version: int, where: str = "true") -> str:
        signed = {**values, "minutes": f"{sign} * ({values['minutes']})",
                  "business_minutes": f"{sign} * ({values['business_minutes']})"}  # fmt: skip
        columns = {**signed, "sign": str(sign), "aggregate_version": str(version)}
        select = ", ".join(columns[name] for name in LedgerRow._fields)
        return f"INSERT INTO worklog_ledger ({LEDGER_COLUMNS}) SELECT {select} FROM numbers({rows}) WHERE {where}"

    return [
        worklogs(recorded, voided=False),
        worklogs(corrected, voided=False, where=CORRECTED),
        worklogs({**recorded, "minutes": "0"}, voided=True, where=VOIDED),
        ledger(recorded, 1, 2),
        ledger(recorded, -1, 3, where=f"{CORRECTED} OR {VOIDED}"),
        ledger(corrected, 1, 3, where=CORRECTED),
    ]


#: Hours per client the way reporting answered before the ledger (migration 010): worklogs FINAL.
BEFORE_THE_LEDGER = """
    SELECT client_id, round(sum(minutes) / 60, 2) AS hours, round(sumIf(minutes, billable) / 60, 2) AS billable_hours,
           uniqExact(ticket_id) AS tickets, count() AS worklogs
    FROM worklogs FINAL
    WHERE performed_at >= {start:DateTime64(3, 'UTC')} AND performed_at < {end:DateTime64(3, 'UTC')} AND NOT voided
    GROUP BY client_id ORDER BY client_id
"""

#: The same on PostgreSQL, as Zammad's and GLPI's reports do it: a GROUP BY over the current worklog rows.
ON_POSTGRES = """
    SELECT client_id, round(sum(minutes) / 60.0, 2), round(coalesce(sum(minutes) FILTER (WHERE billable), 0) / 60.0, 2),
           count(DISTINCT ticket_id), count(*)
    FROM worklogs WHERE performed_at >= '{start}' AND performed_at < '{end}'
    GROUP BY client_id ORDER BY client_id;
"""
POSTGRES_SCHEMA = """
    CREATE TABLE worklogs (client_id text NOT NULL, ticket_id text NOT NULL, technician_id text NOT NULL,
                           minutes integer NOT NULL, billable boolean NOT NULL, performed_at timestamptz NOT NULL);
"""
POSTGRES_INDEXES = """
    CREATE INDEX worklogs_performed_at ON worklogs (performed_at);
    CREATE INDEX worklogs_client_performed_at ON worklogs (client_id, performed_at);
    VACUUM ANALYZE worklogs;
"""
MONTH = {"from": "2026-03-01", "to": "2026-03-31"}
YEAR = {"from": "2026-01-01", "to": "2026-12-31"}
#: Runs per timing, for a month and for the year: PostgreSQL takes tens of seconds over the year.
RUNS = {"month": 7, "year": 3}
#: Worklogs per ledger lookup timed in (c): a quiet moment's batch, and a full batch's (of 20,000 events).
LOOKUPS = (6, 12_000)
LOOKUP_RUNS = 5


async def ledger_lookups(warehouse: Warehouse, worklog_rows: int) -> dict[str, float]:
    """(c): the projector's lookup of the newest ledger rows of a batch's worklogs, p50 in ms, for worklogs the
    ledger does not hold yet (new ones, the usual case) and for worklogs it holds (corrections, redeliveries);
    through the ledger's projection by worklog, and, as the baseline in the same run, through the ledger's own
    order, which reads every granule's worklog_id (as before migration 015). Other worklogs every run, as every
    batch has its own: ClickHouse remembers which granules a condition excluded, and repeated the same lookup is
    answered from that."""
    figures = {}
    for size in LOOKUPS:
        for kind in ("new", "held"):
            for how, settings in (("by_worklog", ""), ("whole_column", " SETTINGS optimize_use_projections = 0")):
                timings = []
                for run in range(LOOKUP_RUNS):
                    if kind == "new":
                        worklogs = [uuid.uuid4() for _ in range(size)]
                    else:  # different ones for each way and run
                        first = run * 2 + (how == "whole_column")
                        worklogs = [row[0] for row in (await warehouse.select(
                            f"SELECT reinterpretAsUUID(sipHash128(number)) FROM numbers({worklog_rows}) "
                            f"WHERE number % {worklog_rows // size} = {first} LIMIT {size}"
                        )).rows]  # fmt: skip
                    began = time.perf_counter()
                    newest = await warehouse.select(_NEWEST_LEDGER_ROWS + settings, {"worklog_ids": worklogs})
                    timings.append((time.perf_counter() - began) * 1000)
                    if len(newest.rows) != (size if kind == "held" else 0):
                        raise AssertionError(f"the lookup of {size} {kind} worklogs ({how}) found {len(newest.rows)}")
                figures[f"lookup_{size}_{kind}_{how}_p50_ms"] = statistics.median(timings)
    return figures


def _postgres_bin() -> Path:
    """The directory of Debian's PostgreSQL server programs, installing the package first if it is missing."""
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not installed:
        print("installing Debian's postgresql package (apt-get)", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
        installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return installed[-1].parent


class LocalPostgres:
    """A PostgreSQL server of its own in a temporary directory, on a free port, for the length of a `with`.
    PostgreSQL refuses to run as root, so as root the server runs as the package's `postgres` user."""

    def __init__(self) -> None:
        self._bin = _postgres_bin()
        self._dir = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    def _server(self, *command: str) -> None:
        subprocess.run([*self._as, str(self._bin / command[0]), *command[1:]], check=True, stdout=subprocess.DEVNULL)

    def __enter__(self) -> LocalPostgres:
        if self._as:
            shutil.chown(self._dir, "postgres", "postgres")
        data = str(self._dir / "data")
        self._server("initdb", "-D", data, "-U", "bench", "--auth=trust", "--no-sync")
        options = (f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 -c shared_buffers=1GB "
                   "-c work_mem=256MB -c fsync=off -c synchronous_commit=off -c full_page_writes=off")  # fmt: skip
        self._server("pg_ctl", "-D", data, "-l", str(self._dir / "log"), "-o", options, "-w", "start")
        return self

    def __exit__(self, *_: object) -> None:
        self._server("pg_ctl", "-D", str(self._dir / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self._dir, ignore_errors=True)

    def psql(self, script: str) -> str:
        """Run `script` (SQL and psql meta-commands); returns its unaligned, tuples-only output."""
        command = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                   "-U", "bench", "-d", "postgres"]  # fmt: skip
        return subprocess.run(command, input=script, check=True, capture_output=True, text=True).stdout

    def answer_and_p50_ms(self, sql: str, runs: int) -> tuple[list[tuple[str, ...]], float]:
        """The rows of `sql` and the median of `runs` runs in one session, as psql's \\timing measures them
        (sent, executed, received: no process start or connection)."""
        lines = self.psql("\\timing on\n" + sql * runs).splitlines()
        timings = [float(line.split()[1]) for line in lines if line.startswith("Time: ")]
        rows = [tuple(line.split("|")) for line in lines if not line.startswith("Time: ")]
        return rows[: len(rows) // runs], statistics.median(timings)


def figures_of(rows: list[tuple[Any, ...]]) -> list[tuple[str, float, float, int, int]]:
    """client, hours, billable hours, tickets, worklogs: what every backend's answer is compared on."""
    return [(str(c), float(h), float(b), int(t), int(w)) for c, h, b, t, w in rows]


def hours_over_many_worklogs(scratch: Path, worklog_rows: int) -> dict[str, Any]:
    """(c): hours per client over `worklog_rows` worklogs, a month and the whole year, p50 of RUNS: from the
    worklog ledger (the API's statement) as inserted and after merging, from worklogs FINAL as before the ledger,
    and on PostgreSQL over the same current worklogs. Every answer is checked to be the same."""
    warehouse = Warehouse(f"chdb://{scratch / 'chdb-worklogs'}", ROOT / "deploy" / "clickhouse")
    periods = {"month": MONTH, "year": YEAR}
    queries = {name: HoursPerClientQuery.model_validate(period) for name, period in periods.items()}
    csv_file = scratch / "worklogs.csv"

    async def on_clickhouse() -> tuple[dict[str, Any], dict[str, list[tuple[Any, ...]]]]:
        await warehouse.open()
        try:
            began = time.perf_counter()
            for statement in synthetic_statements(worklog_rows):
                await warehouse.select(statement)
            figures: dict[str, Any] = {"generate_s": time.perf_counter() - began}
            figures |= await ledger_lookups(warehouse, worklog_rows)
            answers = {name: (await warehouse.report(query)).rows for name, query in queries.items()}
            for name, query in queries.items():
                figures[f"{name}_as_inserted_p50_ms"] = await atimed(lambda q=query: warehouse.report(q), RUNS[name])
            await warehouse.select("OPTIMIZE TABLE worklog_ledger FINAL")
            await warehouse.select("OPTIMIZE TABLE worklogs FINAL")
            for name, query in queries.items():
                figures[f"{name}_merged_p50_ms"] = await atimed(lambda q=query: warehouse.report(q), RUNS[name])
                start, end = query.utc_interval()
                before = lambda s=start, e=end: warehouse.select(BEFORE_THE_LEDGER, {"start": s, "end": e})  # noqa: E731
                if figures_of((await before()).rows) != figures_of(answers[name]):
                    raise AssertionError(f"the ledger and worklogs FINAL disagree on the {name}")
                figures[f"{name}_before_the_ledger_p50_ms"] = await atimed(before, RUNS[name])
            await warehouse.select(
                "INSERT INTO FUNCTION file({path:String}, 'CSV') SELECT client_id, ticket_id, technician_id, minutes, "
                "billable, performed_at FROM worklogs FINAL WHERE NOT voided "
                "SETTINGS engine_file_truncate_on_insert = 1",
                {"path": str(csv_file)},
            )
            return figures, answers
        finally:
            await warehouse.close()

    figures, answers = asyncio.run(on_clickhouse())
    with LocalPostgres() as postgres:
        began = time.perf_counter()
        postgres.psql(f"{POSTGRES_SCHEMA}\\copy worklogs FROM '{csv_file}' CSV\n{POSTGRES_INDEXES}")
        figures["postgres_load_s"] = time.perf_counter() - began
        for name, query in queries.items():
            start, end = (moment.isoformat() for moment in query.utc_interval())
            sql = ON_POSTGRES.format(start=start, end=end)
            rows, figures[f"{name}_postgres_p50_ms"] = postgres.answer_and_p50_ms(sql, RUNS[name])
            if figures_of(rows) != figures_of(answers[name]):
                raise AssertionError(f"PostgreSQL and the ledger disagree on the {name}")
    return figures


async def atimed(measure: Any, runs: int) -> float:
    """p50 in ms of `runs` awaits of `measure()`."""
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        await measure()
        timings.append((time.perf_counter() - began) * 1000)
    return statistics.median(timings)


async def started_producer(settings: ReportingSettings) -> AIOKafkaProducer:
    producer = make_producer(settings, client_id="bench-intake")
    await producer.start()
    return producer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--latency-samples", type=int, default=50)
    parser.add_argument("--worklog-rows", type=int, default=10_000_000)
    parser.add_argument("--worklogs-only", action="store_true", help="only (c); print its figures, write nothing")
    parser.add_argument("--sealed", action="store_true", help="people's words sealed, as intake writes them with "
                        "PRIVACY_MASTER_KEY_FILE (the cost of crypto-shredding)")  # fmt: skip
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"the JSON file (default {RESULTS.name})")
    args = parser.parse_args()
    if args.worklogs_only:
        with tempfile.TemporaryDirectory(prefix="bench-reporting-") as scratch:
            print(json.dumps(hours_over_many_worklogs(Path(scratch), args.worklog_rows), indent=2))
        return
    tune_garbage_collection()  # as the service does at start-up, so that the baselines compare
    tickets = max(1, args.events // EVENTS_PER_TICKET)
    events = [event for number in range(tickets) for event in a_ticket_day(number)]
    if args.sealed:
        events = sealed(events)
    messages = [(event.ticket_id.encode(), encode(event)) for event in events]
    expected_hours = round(sum(e.data.minutes for e in events if isinstance(e, WorklogRecorded)) / 60, 2)

    with tempfile.TemporaryDirectory(prefix="bench-reporting-") as scratch, LocalKafka(Path(scratch, "kafka")) as kafka:
        bootstrap = kafka.bootstrap_servers
        asyncio.run(ensure_topics(bootstrap))
        settings = ReportingSettings(
            kafka_bootstrap_servers=bootstrap,
            api_keys_file=Path(scratch, "unused.json"),
            clickhouse_url=None,
            chdb_path=Path(scratch, "chdb"),
            consumer_group="bench-projection",
        )
        produced_per_s = asyncio.run(produce(settings, messages))
        consumed_per_s = asyncio.run(consume_only(bootstrap, len(messages)))
        processed_per_s = validate_only(messages)
        projection = project_all(settings, expected_hours)
        waits = (settings.batch_max_wait_seconds, 0.05)
        latencies = {
            wait: latency(settings.model_copy(update={"batch_max_wait_seconds": wait}), args.latency_samples)
            for wait in waits
        }
        rebuilt = asyncio.run(rebuild(settings))  # (d): with the service stopped (chDB: one process)
        if rebuilt.events < len(messages) or rebuilt.skipped:
            raise AssertionError(f"the rebuild projected {rebuilt.events} events and skipped {rebuilt.skipped}")
    with tempfile.TemporaryDirectory(prefix="bench-reporting-") as scratch:
        many = hours_over_many_worklogs(Path(scratch), args.worklog_rows)

    projected_per_s = len(messages) / projection["seconds"]
    result = {
        "events": len(messages),
        "sealed": args.sealed,
        "mean_event_bytes": round(sum(len(v) for _, v in messages) / len(messages)),
        "batch_size": settings.batch_size,
        "produce_events_per_s": round(produced_per_s),
        "baseline_consume_only_events_per_s": round(consumed_per_s),
        "baseline_validate_only_events_per_s": round(processed_per_s),
        "projection_events_per_s": round(projected_per_s),
        "projection_seconds": round(projection["seconds"], 2),
        "projection_seconds_inserting": round(projection["inserting_seconds"], 2),
        "projection_vs_consume_only": round(projected_per_s / consumed_per_s, 3),
        "projection_cores": {
            role[: -len(" cores")]: used for role, used in projection.items() if role.endswith(" cores")
        },
        "rebuild_events": rebuilt.events,
        "rebuild_events_per_s": round(rebuilt.events / rebuilt.seconds),
        "report_query_p50_ms": round(projection["report_query_p50_ms"], 1),
        "latency": {
            f"batch_max_wait_{wait}s": {k: round(v, 1) for k, v in lat.items()} for wait, lat in latencies.items()
        },
        "latency_samples": args.latency_samples,
        "hours_per_client": {"worklog_rows": args.worklog_rows, **{k: round(v, 1) for k, v in many.items()}},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")

    rows = [
        ("events (mean bytes)", f"{result['events']:,} ({result['mean_event_bytes']} B)"),
        ("produce (aiokafka, in flight)", f"{result['produce_events_per_s']:,} events/s"),
        ("baseline: consume only", f"{result['baseline_consume_only_events_per_s']:,} events/s"),
        ("baseline: validate only", f"{result['baseline_validate_only_events_per_s']:,} events/s"),
        ("projection into chDB (a)", f"{result['projection_events_per_s']:,} events/s "
                                     f"({result['projection_vs_consume_only']:.2f}x consume only)"),
        ("  of which inserting into chDB",
         f"{result['projection_seconds_inserting']} s of {result['projection_seconds']} s"),
        ("  cores used by the service while projecting",
         ", ".join(f"{role} {used}" for role, used in result["projection_cores"].items())),
        ("rebuild (d): every topic into fresh tables", f"{result['rebuild_events_per_s']:,} events/s "
                                                       f"({result['rebuild_events']:,} events)"),
        ("hours-per-client by day, p50", f"{result['report_query_p50_ms']} ms over {result['events']:,} events"),
        *(
            (f"event-to-report (b), wait {wait}s", f"p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms")
            for wait, lat in latencies.items()
        ),
        *(
            (f"hours per client, the {name} of {args.worklog_rows:,} worklogs (c)",
             f"ledger p50 {many[f'{name}_as_inserted_p50_ms']:.0f} ms as inserted, "
             f"{many[f'{name}_merged_p50_ms']:.0f} ms merged; "
             f"worklogs FINAL {many[f'{name}_before_the_ledger_p50_ms']:.0f} ms; "
             f"PostgreSQL {many[f'{name}_postgres_p50_ms']:.0f} ms "
             f"({many[f'{name}_postgres_p50_ms'] / many[f'{name}_merged_p50_ms']:.1f}x the ledger merged)")
            for name in ("month", "year")
        ),
        *(
            (f"ledger lookup of {size:,} {kind} worklogs (c)",
             f"p50 {many[f'lookup_{size}_{kind}_by_worklog_p50_ms']:.0f} ms by worklog, "
             f"{many[f'lookup_{size}_{kind}_whole_column_p50_ms']:.0f} ms reading the whole column")
            for size in LOOKUPS for kind in ("new", "held")
        ),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    print(f"\nreporting benchmark ({args.latency_samples} latency samples per setting)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
