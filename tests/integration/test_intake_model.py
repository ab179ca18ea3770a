"""Model-based test of the ticket aggregate through intake's HTTP API: two intake replicas (processes, as in
production) on a broker of their own, driven by hypothesis with random commands, retries under the same key and
under a reused one, stale If-Match and kill -9 of a replica, against a small reference model of what each ticket
must be.

After every step, both replicas show each ticket as the model has it (so no acknowledged effect is lost and none
is applied twice); every refusal is the status the model predicts. At the end of each run, tickets.events holds
each ticket's versions contiguous from 1, each event once.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from deploy.kafka.launcher import LocalKafka, free_ports
from deploy.processes import ServiceProcess, procfile_processes
from tests.conftest import EXAMPLES
from tests.polling import eventually
from ticketstream_shared.contract import decode_ticket_event
from ticketstream_shared.contract.topics import TICKET_PARTITIONS, TICKETS_EVENTS
from ticketstream_shared.runtime.auth import write_dev_keys
from ticketstream_shared.runtime.kafka import records_to_end
from ticketstream_shared.runtime.kafka_admin import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

STATUSES = ("new", "open", "in_progress", "waiting_on_customer", "resolved", "closed")
#: How long a request may keep meeting 503s and lost connections (a replica killed, partitions changing hands).
ANSWER_WITHIN_S = 90
#: What a reused key comes back with: other values in the body, or the same body for another ticket.
CHANGES = ("body", "target")


def allowed(now: str, to: str) -> bool:
    """The reference model's lifecycle, written apart from intake's table: anything but staying put or going back to
    new, except that a resolved ticket is not waited on and a closed one may only be reopened."""
    if to in (now, "new"):
        return False
    if now == "closed":
        return to == "open"
    return not (now == "resolved" and to == "waiting_on_customer")


@dataclass
class ModelTicket:
    ticket_id: str
    version: int = 1
    status: str = "new"
    minutes: int = 0
    comments: int = 0


@dataclass
class KeyedCall:
    """A request sent under a key, and the answer it got the first time."""

    caller: str
    key: str
    method: str
    path: str
    body: dict[str, Any]
    status: int
    answer: dict[str, Any]
    etag: str


@dataclass
class System:
    replicas: list[ServiceProcess]
    tokens: dict[str, str]
    bootstrap: str
    http: list[httpx.Client] = field(default_factory=list)


@pytest.fixture(scope="module")
def system(tmp_path_factory) -> Iterator[System]:
    """A broker of its own (kills and restarts must not disturb the session's) and two intake processes on it."""
    root = tmp_path_factory.mktemp("model")
    with LocalKafka(root / "kafka") as kafka:
        asyncio.run(ensure_topics(kafka.bootstrap_servers))
        dev_keys_path, api_keys_path = write_dev_keys(root)
        environment = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "API_KEYS_FILE": str(api_keys_path),
            # the replicas' local stores: this broker's, not the checkout's .local/state (make run's)
            "STATE_ROOT": str(root / "state"),
        }
        names = ["intake.1", "intake.2"]
        processes = procfile_processes({"intake": 2}, environment, dict(zip(names, free_ports(2), strict=True)), root)
        replicas = [processes[name] for name in names]
        try:
            for replica in replicas:
                replica.start()
            for replica in replicas:
                eventually(replica.ready, timeout_s=90, what=f"{replica.name} ready")
            tokens = json.loads(dev_keys_path.read_text())
            yield System(replicas, tokens, kafka.bootstrap_servers)
        finally:
            for replica in replicas:
                replica.stop()


def _send(system: System, replica: int, method: str, path: str, caller: str, **kwargs: Any) -> httpx.Response:
    """One request to a replica, sent again (with the same key, so safely) on 503 or a lost connection, on the
    other replica if this one is down."""
    headers = {"Authorization": f"Bearer {system.tokens[caller]}", **kwargs.pop("headers", {})}
    answers: list[httpx.Response] = []

    def answered() -> bool:
        target = system.replicas[replica] if system.replicas[replica].running() else system.replicas[1 - replica]
        try:
            answer = httpx.request(method, f"{target.url}{path}", headers=headers, timeout=30, **kwargs)
        except httpx.TransportError:
            return False
        if answer.status_code == 503:
            assert "Retry-After" in answer.headers, answer.text
            return False
        answers.append(answer)
        return True

    eventually(answered, timeout_s=ANSWER_WITHIN_S, interval_s=0.2, what=f"an answer to {method} {path}")
    return answers[-1]


def _events_of(bootstrap: str, ticket_ids: set[str]) -> dict[str, list]:
    """Every event of the given tickets in tickets.events, in log order, read with a raw consumer."""

    async def read() -> dict[str, list]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        found: dict[str, list] = defaultdict(list)
        try:
            every = {TopicPartition(TICKETS_EVENTS, p): None for p in range(TICKET_PARTITIONS)}
            async for record in records_to_end(consumer, every):
                if record.key.decode() in ticket_ids:
                    found[record.key.decode()].append(decode_ticket_event(record.value))
        finally:
            await consumer.stop()
        return found

    return asyncio.run(read())


def _another_value(body: dict[str, Any]) -> tuple[str, Any]:
    """A field of a worklog, status or comment body, and a valid value it did not have."""
    if "minutes" in body:
        return "minutes", body["minutes"] + 1 if body["minutes"] < 480 else 1
    if "status" in body:
        return "status", next(status for status in STATUSES if status != body["status"])
    return "body", body["body"] + " (and now tray 1 too)"


class TicketsMachine(RuleBasedStateMachine):
    system: System  # set by the test

    tickets = Bundle("tickets")
    calls = Bundle("calls")

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[str, ModelTicket] = {}
        self.killed = False

    # --- the commands ------------------------------------------------------------------------------------------

    def _keyed(self, replica: int, caller: str, method: str, path: str, body: dict, **headers: str) -> KeyedCall:
        key = str(uuid.uuid4())
        answer = _send(
            self.system, replica, method, path, caller, json=body, headers={"Idempotency-Key": key, **headers}
        )
        return KeyedCall(
            caller, key, method, path, body, answer.status_code, answer.json(), answer.headers.get("ETag", "")
        )

    @rule(target=tickets, replica=st.integers(0, 1))
    def create(self, replica: int) -> str:
        body = {"client_id": "acme", "requester_id": "acme-requester", "title": "Printer jams", "category": "printers",
                "priority": "P3"}  # fmt: skip
        call = self._keyed(replica, "integration", "POST", "/v1/tickets", body)
        assert call.status == 201, call.answer
        assert (call.answer["version"], call.answer["status"]) == (1, "new")
        self.model[call.answer["id"]] = ModelTicket(call.answer["id"])
        return call.answer["id"]

    @rule(target=calls, ticket_id=tickets, replica=st.integers(0, 1), minutes=st.integers(1, 480))
    def log_work(self, ticket_id: str, replica: int, minutes: int) -> KeyedCall:
        body = {"technician_id": "tech-1", "minutes": minutes, "billable": minutes % 2 == 0}
        call = self._keyed(replica, "technician", "POST", f"/v1/tickets/{ticket_id}/worklogs", body)
        ticket = self.model[ticket_id]
        assert call.status == 201, call.answer
        ticket.version += 1
        ticket.minutes += minutes
        assert call.answer["version"] == ticket.version and call.etag == f'"{ticket.version}"'
        return call

    @rule(target=calls, ticket_id=tickets, replica=st.integers(0, 1), to=st.sampled_from(STATUSES))
    def change_status(self, ticket_id: str, replica: int, to: str) -> KeyedCall:
        ticket = self.model[ticket_id]
        call = self._keyed(replica, "technician", "POST", f"/v1/tickets/{ticket_id}/status", {"status": to})
        if allowed(ticket.status, to):
            assert call.status == 200, call.answer
            ticket.version, ticket.status = ticket.version + 1, to
            assert (call.answer["version"], call.answer["status"]) == (ticket.version, to)
        else:
            assert call.status == 409, call.answer
        return call

    @rule(target=calls, ticket_id=tickets, replica=st.integers(0, 1), requester=st.booleans())
    def comment(self, ticket_id: str, replica: int, requester: bool) -> KeyedCall:
        ticket = self.model[ticket_id]
        author = "acme-requester" if requester else "tech-1"
        body = {"author_id": author, "body": "Still jamming on tray 2", "public": True}
        call = self._keyed(replica, "requester" if requester else "technician", "POST",
                           f"/v1/tickets/{ticket_id}/comments", body)  # fmt: skip
        if ticket.status == "closed":
            assert call.status == 409, call.answer
            return call
        assert call.status == 201, call.answer
        ticket.version += 1
        ticket.comments += 1
        if requester and ticket.status in ("waiting_on_customer", "resolved"):  # the answer awaited, or "not solved"
            ticket.version, ticket.status = ticket.version + 1, "open"  # back in the queue
        return call

    @rule(ticket_id=tickets, replica=st.integers(0, 1), behind=st.integers(1, 3))
    def stale_if_match(self, ticket_id: str, replica: int, behind: int) -> None:
        ticket = self.model[ticket_id]
        stale = {"If-Match": f'"{max(ticket.version - behind, 0)}"'}
        body = {"technician_id": "tech-1", "minutes": 5, "billable": True}
        call = self._keyed(replica, "technician", "POST", f"/v1/tickets/{ticket_id}/worklogs", body, **stale)
        assert call.status == 409, call.answer

    # --- retries -----------------------------------------------------------------------------------------------

    @rule(call=calls, replica=st.integers(0, 1))
    def retry(self, call: KeyedCall, replica: int) -> None:
        """The same request under its key: the first answer again, and nothing changes. (A refused request bound
        its key to nothing: sent again, it is decided again, so only requests that took effect are retried.)"""
        if call.status >= 300:
            return
        again = _send(self.system, replica, call.method, call.path, call.caller, json=call.body,
                      headers={"Idempotency-Key": call.key})  # fmt: skip
        assert again.status_code == call.status, again.text
        assert again.json() == call.answer
        assert again.headers["Idempotent-Replayed"] == "true" and again.headers["ETag"] == call.etag

    @rule(
        call=consumes(calls), ticket_id=tickets, replica=st.integers(0, 1), change=st.sampled_from(["body", "target"])
    )
    def reuse_key(self, call: KeyedCall, ticket_id: str, replica: int, change: str) -> None:
        """The key of a request that took effect, for anything else: a 409 naming the difference, and nothing
        changes."""
        if call.status >= 300 or (change == "target" and f"/{ticket_id}/" in call.path):
            return
        body, path = dict(call.body), call.path
        if change == "body":
            name, value = _another_value(body)
            body[name], differs = value, [f"body.{name}"]
        else:
            path, differs = f"/v1/tickets/{ticket_id}/{path.rsplit('/', 1)[-1]}", ["target"]
        reused = _send(self.system, replica, call.method, path, call.caller, json=body,
                       headers={"Idempotency-Key": call.key})  # fmt: skip
        assert reused.status_code == 409, reused.text
        assert reused.json()["differs"] == differs, reused.text

    # --- failures ----------------------------------------------------------------------------------------------

    @precondition(lambda self: not self.killed)
    @rule(replica=st.integers(0, 1))
    def kill_a_replica(self, replica: int) -> None:
        """kill -9 of one replica, and its start again: the other answers meanwhile."""
        self.killed = True
        victim = self.system.replicas[replica]
        victim.kill9()
        victim.start()
        eventually(victim.ready, timeout_s=90, what=f"{victim.name} ready again")

    # --- what must hold ----------------------------------------------------------------------------------------

    @invariant()
    def both_replicas_show_every_ticket_as_the_model_does(self) -> None:
        for ticket in self.model.values():
            for replica in (0, 1):
                eventually(
                    lambda ticket=ticket, replica=replica: self._shown_as_modelled(ticket, replica),
                    timeout_s=30,
                    interval_s=0.1,
                    what=f"{ticket} on replica {replica}",
                )

    def _shown_as_modelled(self, ticket: ModelTicket, replica: int) -> bool:
        answer = _send(self.system, replica, "GET", f"/v1/tickets/{ticket.ticket_id}", "admin")
        if answer.status_code != 200:
            return False
        seen = answer.json()
        return (seen["version"], seen["status"], seen["worklog_minutes"]) == (
            ticket.version,
            ticket.status,
            ticket.minutes,
        )

    def teardown(self) -> None:
        if not self.model:
            return
        events = _events_of(self.system.bootstrap, set(self.model))
        for ticket_id, ticket in self.model.items():
            found = events[ticket_id]
            assert [e.aggregate_version for e in found] == list(range(1, ticket.version + 1)), ticket_id
            assert len({e.event_id for e in found}) == len(found)


def test_the_ticket_aggregate_behaves_like_its_model_through_retries_and_kills(system):
    TicketsMachine.system = system
    run = settings(
        max_examples=4,
        stateful_step_count=25,
        deadline=None,
        database=EXAMPLES,
        suppress_health_check=list(HealthCheck),
    )
    run_state_machine_as_test(TicketsMachine, settings=run)
