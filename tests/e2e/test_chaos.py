"""Chaos: two replicas of intake, sla and assignment (one reporting) under steady load through HTTP and
tickets.inbound; one replica of each is killed with SIGKILL mid-load and started again. Then Kafka is disrupted:
a single broker is stopped and started again on the same port and data; of a cluster of three (replication 3,
min.insync.replicas 2), one broker is killed with SIGKILL and started again, then the controller quorum's
leader. Afterwards every acknowledged ticket and worklog is in tickets.events and in reporting exactly once, hours
are exact, each SLA breach is emitted once, no ticket is assigned twice, and every dead letter carries its reason.

The processes come from deploy/Procfile, expanded by honcho itself as `make run SCALE=2` does (deploy/processes.py),
but each runs as its own subprocess: honcho stops every process as soon as one exits, and a kill -9 must leave the
others running. Kafka is this test's own, not the session's: disrupting it must disturb no other test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from deploy.kafka.launcher import LocalKafka, LocalKafkaCluster, free_ports
from deploy.processes import ServiceProcess, procfile_processes, replica_names
from intake.domain import child_id_for
from tests.e2e.test_system import processes_marked
from tests.polling import eventually
from ticketstream_shared.contract.requests import INBOUND_SCOPE, inbound_ticket_id
from ticketstream_shared.contract.topics import (
    ASSIGNMENT_EVENTS,
    SLA_EVENTS,
    TICKETS_EVENTS,
    TICKETS_INBOUND,
    TOPICS,
    dead_letter_topic,
)
from ticketstream_shared.runtime.auth import write_dev_keys
from ticketstream_shared.runtime.kafka_admin import ensure_topics

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]

REPLICAS = {"intake": 2, "sla": 2, "assignment": 2, "reporting": 1}
#: Replicas killed with SIGKILL mid-load, as honcho names them.
VICTIMS = ("intake.2", "sla.1", "assignment.2")
#: Acknowledged writes to wait for before the kill, while the victims are down, and after they are back.
PROGRESS = 60
CLIENTS = 3
#: Who takes the chaos tickets: 1,000 open tickets each at most, and a run under three brokers creates some 1,300.
TECHNICIANS = tuple(f"tech-chaos-{n}" for n in range(1, 5))
#: The first-response target of the chaos clients' policy (always open): every ticket breaches it during the run.
FIRST_RESPONSE_MINUTES = 1
#: Sent to tickets.inbound with the load: each must land in tickets.inbound.dlq with its reason.
POISON = (
    b"not json {" + uuid.uuid4().hex.encode(),
    json.dumps({"type": "create_ticket", "nonce": uuid.uuid4().hex}).encode(),
)


@dataclass
class Ledger:
    """What the system acknowledged, and what it may or may not have done (an answer never came)."""

    tickets: dict[str, str] = field(default_factory=dict)  # ticket id -> client id
    worklogs: dict[str, tuple[str, int]] = field(default_factory=dict)  # worklog id -> (client id, minutes)
    doubtful: int = 0
    http_acks: int = 0
    errors: list[BaseException] = field(default_factory=list)  # what a load thread died of
    retries: Counter = field(default_factory=Counter)  # why a POST was sent again: 503, ConnectError...
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acknowledged(self) -> int:
        """201s over HTTP so far: the measure of progress (tickets.inbound acknowledges without intake)."""
        with self.lock:
            return self.http_acks


@pytest.fixture(params=[1, pytest.param(3, marks=pytest.mark.cluster)], ids=["one broker", "three brokers"])
def broker(request, tmp_path) -> Iterator[LocalKafka | LocalKafkaCluster]:
    """This test's own Kafka, with every topic: the test disrupts it, which the session's broker must not see."""
    kafka = LocalKafka(tmp_path / "kafka") if request.param == 1 else LocalKafkaCluster(tmp_path / "kafka", 3)
    with kafka:
        asyncio.run(ensure_topics(kafka.bootstrap_servers, replication_factor=request.param))
        yield kafka


def _disrupt(kafka: LocalKafka | LocalKafkaCluster, load_goes_on: Callable[[str], None]) -> None:
    """One broker: stopped and started again. A cluster: a broker that does not lead the controller quorum killed
    with SIGKILL, then the quorum's leader, each started again after the load went on without it."""
    if isinstance(kafka, LocalKafka):
        kafka.stop()
        kafka.start()
        return
    leader = kafka.controller_leader()
    follower = next(node for node in kafka.nodes if node is not leader)
    for victim, role in ((follower, "a broker"), (leader, "the controller leader")):
        down = time.monotonic()
        victim.kill()
        load_goes_on(f"load while {role} (node {victim.node_id}) is down")
        victim.start()
        print(f"{role} (node {victim.node_id}) killed and back in {time.monotonic() - down:.0f}s")


@pytest.fixture
def scaled_system(broker, tmp_path):
    """Yields (replicas by honcho name, dev keys, chDB path); stops every process on exit, leaving none behind."""
    dev_keys_path, api_keys_path = write_dev_keys(tmp_path)
    names = replica_names(REPLICAS)
    run_id = str(uuid.uuid4())
    environment = {
        **os.environ,
        "TICKETSTREAM_E2E_RUN": run_id,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "API_KEYS_FILE": str(api_keys_path),
        "CHDB_PATH": str(tmp_path / "clickhouse"),
        # each replica's local store, kept across its kill -9 as a pod's volume is across a container restart
        "STATE_ROOT": str(tmp_path / "state"),
    }
    replicas = procfile_processes(
        REPLICAS, environment, dict(zip(names, free_ports(len(names)), strict=True)), tmp_path
    )
    assert sorted(replicas) == sorted(names)
    try:
        for replica in replicas.values():
            replica.start()
        for replica in replicas.values():
            eventually(replica.ready, timeout_s=90, what=f"{replica.name} ready")
        yield replicas, json.loads(dev_keys_path.read_text()), tmp_path / "clickhouse"
    finally:
        for replica in replicas.values():
            replica.terminate()
        for replica in replicas.values():
            replica.stop()
        eventually(lambda: not processes_marked(run_id), timeout_s=15, what="no process left behind")


def _kill9(replica: ServiceProcess) -> None:
    """SIGKILL to the service itself (the Procfile's commands exec it), and it is gone."""
    run = replica.env["TICKETSTREAM_E2E_RUN"]
    assert replica.pid in processes_marked(run)
    replica.kill9()
    assert replica.pid not in processes_marked(run)


def _post_until_answered(
    client: httpx.Client, urls: list[str], path: str, body: dict, key: str, retries: Counter
) -> httpx.Response | None:
    """POST with one Idempotency-Key to the replicas in turn until one answers 201 (a retry after a lost answer
    finds the first outcome); None if no answer came within the deadline."""
    deadline = time.monotonic() + 45
    for url in itertools.cycle(urls):
        if time.monotonic() > deadline:
            return None
        try:
            response = client.post(f"{url}{path}", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError as error:
            retries[type(error).__name__] += 1
            continue
        if response.status_code == 201:
            return response
        # Only "try again" answers are retried: a 404 for a ticket another replica acknowledged would be a bug
        # (a replica reads the ticket's partition to its current end before it says it does not know a ticket).
        assert response.status_code in (502, 503, 504), (path, response.status_code, response.text)
        retries[response.status_code] += 1
        time.sleep(0.05)  # back-off between retries, not synchronisation
    raise AssertionError("unreachable")


def _recording(run, ledger: Ledger):
    """A load thread's run, keeping what it died of for the test to fail on."""

    def recorded() -> None:
        try:
            run()
        except BaseException as error:
            ledger.errors.append(error)
            raise

    return recorded


def _http_load(urls: list[str], token: str, clients: list[str], category: str, ledger: Ledger, stop: threading.Event):
    rng = random.Random()
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=15) as client:
        while not stop.is_set():
            rng.shuffle(urls)
            client_id = rng.choice(clients)
            body = {"client_id": client_id, "requester_id": "carol", "title": "Printer on fire", "category": category}
            created = _post_until_answered(
                client, urls, "/v1/tickets", {**body, "priority": "P4"}, str(uuid.uuid4()), ledger.retries
            )
            if created is None:
                with ledger.lock:
                    ledger.doubtful += 1
                continue
            ticket_id = created.json()["id"]
            with ledger.lock:
                ledger.tickets[ticket_id] = client_id
                ledger.http_acks += 1
            for _ in range(2):
                minutes = rng.choice((15, 30, 45, 60, 90))
                work = {"technician_id": TECHNICIANS[0], "minutes": minutes, "billable": True}
                logged = _post_until_answered(
                    client, urls, f"/v1/tickets/{ticket_id}/worklogs", work, str(uuid.uuid4()), ledger.retries
                )
                with ledger.lock:
                    if logged is None:
                        ledger.doubtful += 1
                    else:
                        ledger.worklogs[logged.json()["id"]] = (client_id, minutes)
                        ledger.http_acks += 1


def _inbound_load(bootstrap: str, clients: list[str], category: str, ledger: Ledger, stop: threading.Event):
    """create_ticket then add_worklog on tickets.inbound, keyed by ticket so that they stay in order."""

    async def produce() -> None:
        rng = random.Random()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
        await producer.start()

        async def send(value: bytes, key: bytes | None = None) -> None:
            """Until acknowledged: while the broker restarts a send may fail, and sending a request again is safe
            (intake derives ids from request_id)."""
            while True:
                try:
                    await producer.send_and_wait(TICKETS_INBOUND, value, key=key)
                    return
                except KafkaError as error:
                    ledger.retries[type(error).__name__] += 1

        try:
            for poison in POISON:
                await send(poison)
            while not stop.is_set():
                client_id = rng.choice(clients)
                request_id = f"chaos-{uuid.uuid4()}"
                ticket_id = inbound_ticket_id(request_id)
                create = {
                    "type": "create_ticket",
                    "request_id": request_id,
                    "data": {
                        "client_id": client_id,
                        "requester_id": "dave",
                        "title": "Monitoring: disk full",
                        "category": category,
                        "priority": "P4",
                    },
                }
                await send(json.dumps(create).encode(), ticket_id.encode())
                with ledger.lock:
                    ledger.tickets[ticket_id] = client_id
                worklog_request = f"{request_id}-work"
                minutes = rng.choice((15, 30, 60))
                work = {
                    "type": "add_worklog",
                    "request_id": worklog_request,
                    "ticket_id": ticket_id,
                    "data": {"technician_id": TECHNICIANS[0], "minutes": minutes, "billable": False},
                }
                await send(json.dumps(work).encode(), ticket_id.encode())
                with ledger.lock:
                    ledger.worklogs[str(child_id_for(INBOUND_SCOPE, ticket_id, worklog_request))] = (client_id, minutes)
                await asyncio.sleep(0.1)  # the load's pace
        finally:
            await producer.stop()

    asyncio.run(produce())


def _read_topics(bootstrap: str, *topics: str) -> dict[str, list[Any]]:
    """Every record of `topics` up to their current end offsets."""

    async def read() -> dict[str, list[Any]]:
        consumer = AIOKafkaConsumer(
            *topics, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + 30
            while len({tp.topic for tp in consumer.assignment()}) < len(topics) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # polling the metadata, with a deadline
            partitions = list(consumer.assignment())
            assert {tp.topic for tp in partitions} == set(topics), partitions
            ends = await consumer.end_offsets(partitions)
            found: dict[str, list[Any]] = defaultdict(list)
            pending = {tp for tp in partitions if ends[tp] > 0}
            deadline = time.monotonic() + 60
            while pending and time.monotonic() < deadline:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    found[tp.topic].extend(records)
                    if records and records[-1].offset + 1 >= ends[tp]:
                        pending.discard(tp)
            assert not pending, f"could not read {pending} to its end"
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


def _chdb_rows(path: Path, sql: str) -> list[dict]:
    """Rows from the reporting tables, read after reporting has stopped (chDB: one process per directory)."""
    script = "import sys, chdb.session as s; print(s.Session(sys.argv[1]).query(sys.argv[2], 'JSONEachRow'))"
    out = subprocess.run([sys.executable, "-c", script, str(path), sql], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def test_nothing_is_lost_or_doubled_when_replicas_and_brokers_restart_under_load(scaled_system, broker):
    replicas, keys, chdb_path = scaled_system
    kafka_bootstrap = broker.bootstrap_servers
    run = uuid.uuid4().hex[:8]
    clients = [f"chaos-{run}-{i}" for i in range(CLIENTS)]
    category = team = calendar = policy = f"chaos-{run}"
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    sla_url, assignment_url = replicas["sla.1"].url, replicas["assignment.1"].url
    targets = {"first_response_minutes": FIRST_RESPONSE_MINUTES, "resolution_minutes": 100_000}
    for method, url, body in (
        ("PUT", f"{sla_url}/v1/sla/calendars/{calendar}", {"timezone": "UTC", "always_open": True}),
        (
            "PUT",
            f"{sla_url}/v1/sla/policies/{policy}",
            {"rank": 0, "match": {"client_ids": clients}, "targets": {"P4": targets}, "calendar_id": calendar},
        ),
        ("PUT", f"{assignment_url}/v1/routing/categories/{category}", {"team": team}),
        *[
            change
            for technician in TECHNICIANS
            for change in (
                (
                    "PUT",
                    f"{assignment_url}/v1/technicians/{technician}",
                    {"name": technician, "team": team, "tier": 1, "skills": [category], "capacity": 1000},
                ),
                ("POST", f"{assignment_url}/v1/technicians/{technician}/shift", {"on_shift": True}),
            )
        ],
    ):
        response = httpx.request(method, url, json=body, headers=admin, timeout=15)
        assert response.status_code in (200, 201), (url, response.text)
    eventually(  # both sla replicas time the chaos tickets by the policy from their first event on
        lambda: httpx.get(f"{replicas['sla.2'].url}/v1/sla/policies/{policy}", headers=admin, timeout=5).is_success,
        what="the chaos policy known to sla.2",
    )

    ledger = Ledger()
    stop = threading.Event()
    intake_urls = [replicas["intake.1"].url, replicas["intake.2"].url]
    loaders = [
        threading.Thread(
            target=_http_load, args=(list(intake_urls), keys["integration"], clients, category, ledger, stop)
        )
        for _ in range(2)
    ] + [threading.Thread(target=_inbound_load, args=(kafka_bootstrap, clients, category, ledger, stop))]
    for loader in loaders:
        loader.run = _recording(loader.run, ledger)  # type: ignore[method-assign]
    started = time.monotonic()
    for loader in loaders:
        loader.start()
    try:
        eventually(lambda: ledger.acknowledged() >= PROGRESS, timeout_s=60, what="load before the kill")
        for name in VICTIMS:
            _kill9(replicas[name])
        floor = ledger.acknowledged()
        eventually(lambda: ledger.acknowledged() >= floor + PROGRESS, timeout_s=60, what="load while victims are down")
        for name in VICTIMS:
            replicas[name].start()
        for name in VICTIMS:
            eventually(replicas[name].ready, timeout_s=90, what=f"{name} ready again")
        floor = ledger.acknowledged()
        eventually(lambda: ledger.acknowledged() >= floor + PROGRESS, timeout_s=60, what="load after the restart")

        def load_goes_on(what: str) -> None:
            floor = ledger.acknowledged()
            eventually(lambda: ledger.acknowledged() >= floor + PROGRESS, timeout_s=120, what=what)

        broker_down = time.monotonic()
        _disrupt(broker, load_goes_on)
        print(f"Kafka disrupted and back in {time.monotonic() - broker_down:.0f}s")
        load_goes_on("load after Kafka came back")
        for name, replica in replicas.items():  # every service reconnected by itself
            eventually(replica.ready, timeout_s=60, what=f"{name} ready after the broker restart")
        last_ticket = time.monotonic()
    finally:
        stop.set()
        for loader in loaders:
            loader.join(timeout=60)
    load_s = time.monotonic() - started
    assert not ledger.errors, f"load threads failed: {ledger.errors!r}"
    assert not any(loader.is_alive() for loader in loaders)
    assert ledger.doubtful == 0, f"{ledger.doubtful} requests never answered 201"
    tickets, worklogs = dict(ledger.tickets), dict(ledger.worklogs)
    print(f"chaos load {load_s:.0f}s: {len(tickets)} tickets, {len(worklogs)} worklogs; retried {dict(ledger.retries)}")

    # tickets.events, read directly: everything acknowledged once, nothing else, versions contiguous.
    def ours_in_the_log() -> tuple[list[dict], set, set] | None:
        events = [json.loads(r.value) for r in _read_topics(kafka_bootstrap, TICKETS_EVENTS)[TICKETS_EVENTS]]
        ours = [e for e in events if e.get("client_id") in clients]
        created = {e["ticket_id"] for e in ours if e["event_type"] == "ticket.created"}
        logged = {e["data"]["worklog_id"] for e in ours if e["event_type"] == "ticket.worklog_recorded"}
        return (ours, created, logged) if created >= set(tickets) and logged >= set(worklogs) else None

    ours, created, logged = eventually(ours_in_the_log, timeout_s=60, interval_s=1, what="every write in the log")
    assert created == set(tickets)
    assert logged == set(worklogs)
    duplicates = [i for i, n in Counter(e["event_id"] for e in ours).items() if n > 1]
    assert not duplicates, f"event ids appended more than once: {duplicates[:5]}"
    per_kind = Counter((e["ticket_id"], e["event_type"], e["data"].get("worklog_id")) for e in ours)
    assert not [k for k, n in per_kind.items() if n > 1 and k[1] in ("ticket.created", "ticket.worklog_recorded")]
    versions = defaultdict(list)
    for event in ours:
        versions[event["ticket_id"]].append(event["aggregate_version"])
    gaps = {t: v for t, v in versions.items() if sorted(v) != list(range(1, len(v) + 1))}
    assert not gaps, f"versions not contiguous: {dict(itertools.islice(gaps.items(), 5))}"

    # Reporting: exact hours per client.
    today = datetime.now(UTC).date().isoformat()
    expected_hours = defaultdict(float)
    for client_id, minutes in worklogs.values():
        expected_hours[client_id] += minutes / 60
    manager = {"Authorization": f"Bearer {keys['manager']}"}

    def hours_reported() -> dict | None:
        rows = httpx.get(
            f"{replicas['reporting.1'].url}/v1/reports/hours-per-client",
            params={"from": today, "to": today},
            headers=manager,
            timeout=15,
        ).json()["rows"]
        found = {row["client_id"]: row["hours"] for row in rows if row["client_id"] in clients}
        return found if found == {c: round(h, 2) for c, h in expected_hours.items()} else None

    try:
        eventually(hours_reported, timeout_s=60, interval_s=0.5, what="exact hours per client in reporting")
    except AssertionError as error:
        raise AssertionError(f"{error}; expected {dict(expected_hours)}") from None

    # assignment.events: every ticket assigned, none twice.
    def assignments() -> dict[str, list[dict]] | None:
        records = _read_topics(kafka_bootstrap, ASSIGNMENT_EVENTS)[ASSIGNMENT_EVENTS]
        found = defaultdict(list)
        for record in records:
            event = json.loads(record.value)
            if event.get("ticket_id") in tickets and event["event_type"] == "assignment.assigned":
                found[event["ticket_id"]].append(event)
        return found if set(found) == set(tickets) else None

    assigned = eventually(assignments, timeout_s=60, interval_s=1, what="every ticket assigned")
    twice = {t: [e["event_id"] for e in events] for t, events in assigned.items() if len(events) > 1}
    assert not twice, f"{len(twice)} tickets assigned more than once: {dict(itertools.islice(twice.items(), 3))}"

    # sla.events: every chaos ticket's first response breached (its target passed during the run), each breach
    # (ticket, metric, deadline) emitted exactly once, although sla replicas died and the broker restarted.
    seen: Counter = Counter()  # what the tickets got on sla.events: the failure message says so

    def breaches() -> list[dict] | None:
        records = _read_topics(kafka_bootstrap, SLA_EVENTS)[SLA_EVENTS]
        events = [e for e in (json.loads(record.value) for record in records) if e["ticket_id"] in tickets]
        kinds = defaultdict(set)
        for event in events:
            kinds[event["ticket_id"]].add(event["event_type"])
        seen.clear()
        seen.update(" + ".join(sorted(kinds[ticket])) or "nothing" for ticket in tickets)
        found = [e for e in events if e["event_type"] == "sla.breached"]
        return found if {e["ticket_id"] for e in found} == set(tickets) else None

    breach_due_s = FIRST_RESPONSE_MINUTES * 60 - (time.monotonic() - last_ticket)
    try:
        breached = eventually(breaches, timeout_s=breach_due_s + 60, interval_s=2, what="every chaos ticket breached")
    except AssertionError as error:
        raise AssertionError(f"{error}; sla.events of the {len(tickets)} tickets: {dict(seen)}") from None
    assert {e["data"]["metric"] for e in breached} == {"first_response"}
    twice = [
        k
        for k, n in Counter((e["ticket_id"], e["data"]["metric"], e["data"]["deadline"]) for e in breached).items()
        if n > 1
    ]
    assert not twice, f"{len(twice)} breaches emitted more than once: {twice[:3]}"

    # Every dead letter, on every DLQ, carries its reason.
    dlqs = [spec.name for spec in TOPICS if spec.name.endswith(".dlq")]
    assert dead_letter_topic(TICKETS_INBOUND) in dlqs
    eventually(
        lambda: (
            {
                r.value
                for r in _read_topics(kafka_bootstrap, dead_letter_topic(TICKETS_INBOUND)).get(
                    dead_letter_topic(TICKETS_INBOUND), []
                )
            }
            >= set(POISON)
        ),
        timeout_s=30,
        interval_s=1,
        what="the poison messages in tickets.inbound.dlq",
    )
    for topic, records in _read_topics(kafka_bootstrap, *dlqs).items():
        print(f"{topic}: {len(records)} dead letters")
        reasonless = [r.offset for r in records if not dict(r.headers).get("dlq.reason")]
        assert not reasonless, f"{topic}: dead letters without dlq.reason at offsets {reasonless[:10]}"

    # Reporting's tables, read once it has stopped: every ticket and worklog exactly once (set equality).
    replicas["reporting.1"].stop()
    in_list = ", ".join(f"'{c}'" for c in clients)
    rows = _chdb_rows(
        chdb_path,
        f"SELECT toString(worklog_id) AS id, count() AS n FROM worklogs FINAL "
        f"WHERE client_id IN ({in_list}) GROUP BY id",
    )
    assert {row["id"] for row in rows} == set(worklogs)
    assert all(int(row["n"]) == 1 for row in rows)
    rows = _chdb_rows(
        chdb_path,
        f"SELECT ticket_id AS id, count() AS n FROM ticket_events FINAL "
        f"WHERE client_id IN ({in_list}) AND event_type = 'ticket.created' GROUP BY id",
    )
    assert {row["id"] for row in rows} == set(tickets)
    assert all(int(row["n"]) == 1 for row in rows)
