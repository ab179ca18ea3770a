"""Assignment against the real broker, with two assignment processes sharing the teams.

Tickets enter as intake writes them (events on tickets.events); the outcome is read where other systems read it
(assignment.events). Every test uses its own categories, teams and consumer groups, so the session's other
tickets never reach its teams.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from fastapi.testclient import TestClient

from assignment.app import build_app
from assignment.settings import AssignmentSettings
from assignment.teamlog import TeamLog
from sla.config_log import config_key
from tests.builders import a_ticket_created
from tests.keys import ACME_MANAGER, ADMIN, INTEGRATION, MANAGER, REQUESTER, TECHNICIAN, TEST_KEYS, bearer
from tests.metrics import EVICTED, metric
from tests.polling import eventually
from tests.replicas import replicas
from tests.unit.test_sla_clocks import config
from ticketstream_shared.contract import (
    Actor,
    Envelope,
    Role,
    TicketStatusChanged,
    TicketUpdated,
    dead_letter_topic,
    decode_assignment_event,
    encode,
)
from ticketstream_shared.contract.codec import MAX_EVENT_BYTES
from ticketstream_shared.contract.sla import ServiceChanged, SlaBreached, SlaWarning
from ticketstream_shared.contract.topics import (
    ASSIGNMENT_BY_TEAM,
    ASSIGNMENT_EVENTS,
    SLA_CONFIG,
    SLA_EVENTS,
    TEAM_PARTITIONS,
    TICKETS_EVENTS,
)

pytestmark = pytest.mark.integration


#: Apps served in the test process, not on their HTTP port: two of one group would advertise the same address, and
#: each one's start would remove the other from the groups as its own former process. (The presence watch is tested
#: with assignment processes, in test_a_killed_replicas_work_goes_to_the_survivor_without_waiting_for_its_session.)
IN_PROCESS = {"api_keys_file": "unused-keys-come-from-tests", "peer_probe_seconds": 0}


def an_assignment_process(kafka_bootstrap: str, group: str) -> TestClient:
    settings = AssignmentSettings(kafka_bootstrap_servers=kafka_bootstrap, consumer_group=group, **IN_PROCESS)
    return TestClient(build_app(settings, TEST_KEYS))


def ready(process: TestClient) -> TestClient:
    eventually(lambda: process.get("/readyz").status_code == 200, timeout_s=60, what="assignment ready")
    return process


@pytest.fixture
def group() -> str:
    return f"assignment-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def two_processes(kafka_bootstrap: str, group: str) -> Iterator[tuple[TestClient, TestClient]]:
    with (
        an_assignment_process(kafka_bootstrap, group) as first,
        an_assignment_process(kafka_bootstrap, group) as second,
    ):
        ready(first), ready(second)
        yield first, second


def publish(kafka_bootstrap: str, events: list[Envelope], topic: str = TICKETS_EVENTS) -> None:
    """Append events to tickets.events as intake does, or to sla.events as the SLA service does (key = ticket id)."""
    send_raw(kafka_bootstrap, topic, [(event.ticket_id, encode(event)) for event in events])


def send_raw(kafka_bootstrap: str, topic: str, messages: list[tuple[str, bytes]]) -> None:
    """Append (key, bytes) messages to `topic`, in order."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for key, value in messages:
                await producer.send(topic, value, key=key.encode())
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(send())


def read_all(kafka_bootstrap: str, topic: str) -> list[ConsumerRecord]:
    """Every message of `topic` so far, as another system reads them (no group, every partition)."""

    async def read() -> list[ConsumerRecord]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            ends = await consumer.end_offsets(list(consumer.assignment()))
            found = []
            while any([await consumer.position(tp) < end for tp, end in ends.items()]):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += records
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


def decisions_about(kafka_bootstrap: str, ticket_ids: set[str]) -> list[Envelope]:
    """Every event of assignment.events about `ticket_ids`, as another system reads them."""
    records = read_all(kafka_bootstrap, ASSIGNMENT_EVENTS)
    return [decode_assignment_event(r.value) for r in records if r.key.decode() in ticket_ids]


def latest_by_ticket(events: list[Envelope]) -> dict[str, Envelope]:
    """The decision in force per ticket (escalations aside); distinct event ids only, as a deduplicating reader."""
    unique = {event.event_id: event for event in events if event.event_type != "assignment.escalated"}
    latest: dict[str, Envelope] = {}
    for event in unique.values():
        latest[event.ticket_id] = event
    return latest


def set_up_teams(process: TestClient, teams: dict[str, str], technicians_per_team: int, capacity: int) -> str:
    """Routing rules and on-shift technicians; returns the category prefix (category of team T: f"{prefix}-{T}")."""
    prefix = uuid.uuid4().hex[:6]
    for team, strategy in teams.items():
        answer = process.put(f"/v1/routing/categories/{prefix}-{team}", json={"team": f"{prefix}-{team}"},
                             headers=bearer(MANAGER))  # fmt: skip
        assert answer.status_code == 200, answer.text
        answer = process.put(f"/v1/routing/teams/{prefix}-{team}", json={"strategy": strategy}, headers=bearer(ADMIN))
        assert answer.status_code == 200 and answer.json()["strategy"] == strategy, answer.text
        for n in range(technicians_per_team):
            technician = f"{prefix}-{team}-tech{n}"
            profile = {"name": f"Tech {n}", "team": f"{prefix}-{team}", "tier": 1,
                       "skills": [f"{prefix}-{team}"], "capacity": capacity}  # fmt: skip
            answer = process.put(f"/v1/technicians/{technician}", json=profile, headers=bearer(MANAGER))
            assert answer.status_code == 200, answer.text
            on_shift = {"on_shift": True}
            shift = process.post(f"/v1/technicians/{technician}/shift", json=on_shift, headers=bearer(MANAGER))
            assert shift.status_code == 200 and shift.json()["on_shift"] is True, shift.text
    return prefix


TEAMS = {"network": "least_loaded", "printers": "round_robin", "database": "skills", "email": "least_loaded",
         "identity": "round_robin", "storage": "skills"}  # fmt: skip


def test_two_processes_assign_every_ticket_once_within_capacity(two_processes, kafka_bootstrap):
    first, second = two_processes
    prefix = set_up_teams(first, TEAMS, technicians_per_team=3, capacity=4)
    shares = first.app.state.team_log.partitions.given, second.app.state.team_log.partitions.given
    eventually(
        lambda: all(shares) and not shares[0] & shares[1] and len(shares[0] | shares[1]) == TEAM_PARTITIONS,
        what="the team partitions shared between the two processes",
    )
    tickets = [
        a_ticket_created(f"{prefix}-t{n}", category=f"{prefix}-{team}", priority=f"P{1 + n % 4}")
        for n, team in enumerate(list(TEAMS) * 20)
    ]
    publish(kafka_bootstrap, tickets)
    ids = {ticket.ticket_id for ticket in tickets}
    latest = eventually(
        lambda: (found := latest_by_ticket(decisions_about(kafka_bootstrap, ids))) and len(found) == len(ids) and found,
        timeout_s=60,
        what="a decision for every ticket",
    )
    assigned = [event for event in latest.values() if event.event_type == "assignment.assigned"]
    unassignable = [event for event in latest.values() if event.event_type == "assignment.unassignable"]
    assert len(assigned) == len(TEAMS) * 3 * 4, "every technician filled up to capacity"
    assert len(unassignable) == len(tickets) - len(assigned)
    assert all("at capacity" in event.data.reason for event in unassignable)
    per_technician = Counter(event.data.technician_id for event in assigned)
    assert max(per_technician.values()) == 4
    every_event = decisions_about(kafka_bootstrap, ids)
    assignments_by_ticket = defaultdict(set)
    for event in every_event:
        if event.event_type == "assignment.assigned":
            assignments_by_ticket[event.ticket_id].add(event.event_id)
    assert all(len(events) == 1 for events in assignments_by_ticket.values()), "no ticket assigned twice"
    for process in (first, second):  # both know every team's load, whichever decides for it (the other once it
        # has read the owner's outcomes back from the team log, which the decisions on assignment.events may precede)

        def load(process: TestClient = process) -> dict:
            return process.get(f"/v1/technicians/{prefix}-network-tech0", headers=bearer(TECHNICIAN)).json()

        view = eventually(lambda process=process: (v := load(process))["open_tickets"] == 4 and v, what="the load")
        assert view["weighted_load"] > 4


def test_freed_capacity_off_shift_and_a_stopped_process_are_taken_care_of(kafka_bootstrap, group):
    with an_assignment_process(kafka_bootstrap, group) as first:
        prefix = set_up_teams(ready(first), {"network": "least_loaded"}, technicians_per_team=2, capacity=2)
        tickets = [a_ticket_created(f"{prefix}-t{n}", category=f"{prefix}-network") for n in range(5)]
        publish(kafka_bootstrap, tickets)
        ids = {ticket.ticket_id for ticket in tickets}
        latest = eventually(
            lambda: (found := latest_by_ticket(decisions_about(kafka_bootstrap, ids))) and len(found) == 5 and found,
            timeout_s=30,
            what="five decisions",
        )
        [waiting] = [event for event in latest.values() if event.event_type == "assignment.unassignable"]
        done = next(event for event in latest.values() if event.event_type == "assignment.assigned")
        publish(kafka_bootstrap, [status_change(done.ticket_id, 2, "resolved")])
        eventually(
            lambda: (
                latest_by_ticket(decisions_about(kafka_bootstrap, {waiting.ticket_id}))[waiting.ticket_id].event_type
                == "assignment.assigned"
            ),
            what="the waiting ticket takes the freed place",
        )

        with an_assignment_process(kafka_bootstrap, group) as second:
            ready(second)
            leaving = done.data.technician_id
            staying = next(t for t in (f"{prefix}-network-tech0", f"{prefix}-network-tech1") if t != leaving)
            in_progress = next(
                e.ticket_id for e in latest_by_ticket(decisions_about(kafka_bootstrap, ids)).values()
                if e.event_type == "assignment.assigned" and e.data.technician_id == leaving
                and e.ticket_id != done.ticket_id
            )  # fmt: skip
            publish(kafka_bootstrap, [status_change(in_progress, 2, "in_progress")])
            eventually(lambda: second.get(f"/v1/assignments/{in_progress}", headers=bearer(ADMIN)).json()["status"]
                       == "in_progress", what="the ticket in progress")  # fmt: skip
            answer = second.post(f"/v1/technicians/{staying}/shift", json={"on_shift": False}, headers=bearer(MANAGER))
            assert answer.status_code == 200 and answer.json()["on_shift"] is False
            answer = second.put(f"/v1/technicians/{staying}", headers=bearer(MANAGER), json={
                "name": "Tech", "team": f"{prefix}-network", "tier": 1, "skills": [], "capacity": 3})  # fmt: skip
            assert answer.status_code == 200
            answer = first.post(f"/v1/technicians/{leaving}/shift", json={"on_shift": False}, headers=bearer(MANAGER))
            assert answer.status_code == 200
            eventually(
                lambda: second.get(f"/v1/technicians/{leaving}", headers=bearer(ADMIN)).json()["open_tickets"] == 1,
                what="only the ticket in progress stays with the technician who went off shift",
            )
        # the second process stopped: the first decides for every team again
        first.post(f"/v1/technicians/{staying}/shift", json={"on_shift": True}, headers=bearer(MANAGER))
        moved = eventually(
            lambda: [
                e for e in latest_by_ticket(decisions_about(kafka_bootstrap, ids)).values()
                if e.event_type == "assignment.assigned" and e.data.technician_id == staying
                and e.data.previous_technician_id == leaving
            ],
            what="the tickets handed back go to the technician on shift",
        )  # fmt: skip
        assert moved and all(e.ticket_id != in_progress for e in moved)
        load_before = first.get(f"/v1/technicians/{staying}", headers=bearer(ADMIN)).json()

    with an_assignment_process(kafka_bootstrap, group) as restarted:  # state rebuilt from the team log
        assert ready(restarted).get(f"/v1/technicians/{staying}", headers=bearer(ADMIN)).json() == load_before


def status_change(ticket_id: str, version: int, to_status: str) -> TicketStatusChanged:
    return TicketStatusChanged(
        event_id=uuid.uuid4(), occurred_at=a_ticket_created().occurred_at, ticket_id=ticket_id, client_id="acme",
        aggregate_version=version, producer="intake", correlation_id="test",
        data={"from_status": "new", "to_status": to_status},
    )  # fmt: skip


def test_the_http_edge_checks_roles_and_bodies_and_records_manual_assignments(kafka_bootstrap, group):
    with an_assignment_process(kafka_bootstrap, group) as process:
        prefix = set_up_teams(ready(process), {"network": "round_robin"}, technicians_per_team=2, capacity=5)
        technician = f"{prefix}-network-tech0"
        profile = {"name": "Ann", "team": "t", "tier": 1, "skills": [], "capacity": 1}
        assert process.put(f"/v1/technicians/{technician}", json=profile).status_code == 401
        assert process.put(f"/v1/technicians/{technician}", json=profile, headers=bearer(REQUESTER)).status_code == 403
        assert process.put(f"/v1/technicians/{technician}", json=profile, headers=bearer(TECHNICIAN)).status_code == 403
        assert process.get("/v1/technicians", headers=bearer(REQUESTER)).status_code == 403
        bad = process.put(f"/v1/technicians/{technician}", headers=bearer(ADMIN),
                          json={**profile, "tier": 0, "capacity": -1, "skills": ["no spaces"]})  # fmt: skip
        assert bad.status_code == 422
        assert {error["field"] for error in bad.json()["errors"]} == {"tier", "capacity", "skills.0"}
        assert process.put("/v1/routing/teams/x", json={"strategy": "manual"}, headers=bearer(ADMIN)).status_code == 422
        assert process.post("/v1/technicians/nobody/shift", json={"on_shift": True},
                            headers=bearer(ADMIN)).status_code == 404  # fmt: skip
        listed = process.get("/v1/technicians", params={"team": f"{prefix}-network"}, headers=bearer(INTEGRATION))
        assert [view["id"] for view in listed.json()["technicians"]] == [technician, f"{prefix}-network-tech1"]

        ticket = a_ticket_created(f"{prefix}-manual", category=f"{prefix}-network")
        publish(kafka_bootstrap, [ticket])
        first = eventually(lambda: process.get(f"/v1/assignments/{ticket.ticket_id}", headers=bearer(ADMIN)).json()
                           .get("technician_id"), what="the ticket assigned")  # fmt: skip
        other = next(t for t in (technician, f"{prefix}-network-tech1") if t != first)
        taken = process.post(f"/v1/assignments/{ticket.ticket_id}", json={"technician_id": other},
                             headers=bearer(TECHNICIAN))  # fmt: skip
        assert taken.status_code == 200 and taken.json()["technician_id"] == other
        manual = eventually(
            lambda: [e for e in decisions_about(kafka_bootstrap, {ticket.ticket_id}) if e.data.strategy == "manual"],
            what="the manual assignment on assignment.events",
        )
        assert (manual[0].data.assigned_by, manual[0].data.previous_technician_id) == ("technician", first)
        # Who decided: the technician's key by hand, assignment itself before.
        assert manual[0].actor == Actor(key_name="technician", role=Role.TECHNICIAN)
        automatic = [e for e in decisions_about(kafka_bootstrap, {ticket.ticket_id}) if e.data.strategy != "manual"]
        assert automatic and {event.actor for event in automatic} == {Actor.system("assignment")}
        # and who changed the roster: the key of the manager who profiled the technician and put them on shift.
        for event_type in ("assignment.technician_profiled", "assignment.shift_changed"):
            [change] = roster_records(kafka_bootstrap, event_type, technician_id=technician)
            assert change["actor"] == {"key_name": "manager", "role": "manager", "subject": None, "on_behalf_of": None}
        trail = process.get("/v1/roster/changes", params={"technician_id": technician}, headers=bearer(ADMIN))
        assert [(change["what"], change["by"]) for change in trail.json()["changes"]] == [
            (f"put technician {technician} on shift", "key manager (manager)"),
            (f"profiled technician {technician} in team {prefix}-network", "key manager (manager)"),
        ]
        assert trail.json()["changes"][0]["changes"] == {"on_shift": {"before": False, "after": True}}
        assert process.get("/v1/roster/changes", headers=bearer(TECHNICIAN)).status_code == 403
        assert process.post(f"/v1/assignments/{ticket.ticket_id}", json={"technician_id": other},
                            headers=bearer(REQUESTER)).status_code == 403  # fmt: skip
        assert process.post("/v1/assignments/unknown-ticket", json={"technician_id": other},
                            headers=bearer(MANAGER)).status_code == 404  # fmt: skip
        # A key scoped to a client sees and assigns that client's tickets only, and changes no roster or routing.
        assert process.get(f"/v1/assignments/{ticket.ticket_id}", headers=bearer(ACME_MANAGER)).status_code == 200
        theirs = a_ticket_created(f"{prefix}-globex", client_id="globex", category=f"{prefix}-network")
        publish(kafka_bootstrap, [theirs])
        eventually(lambda: process.get(f"/v1/assignments/{theirs.ticket_id}", headers=bearer(ADMIN)).status_code == 200,
                   what="globex's ticket at the desk")  # fmt: skip
        seen = process.get(f"/v1/assignments/{theirs.ticket_id}", headers=bearer(ACME_MANAGER))
        assert seen.status_code == 403 and seen.json()["detail"] == "this key is scoped to client acme"
        assert process.post(f"/v1/assignments/{theirs.ticket_id}", json={"technician_id": other},
                            headers=bearer(ACME_MANAGER)).status_code == 403  # fmt: skip
        assert process.post(f"/v1/technicians/{technician}/shift", json={"on_shift": False},
                            headers=bearer(ACME_MANAGER)).status_code == 403  # fmt: skip
        assert process.get(f"/v1/technicians/{technician}", headers=bearer(ADMIN)).json()["on_shift"] is True
        # A ticket whose category no rule routes waits for one, and its assignment says so.
        waiting = a_ticket_created(f"{prefix}-unrouted", category=f"{prefix}-nobody-routes-this")
        publish(kafka_bootstrap, [waiting])
        parked = eventually(lambda: (answer := process.get(f"/v1/assignments/{waiting.ticket_id}",
                                                           headers=bearer(ADMIN))).status_code == 200 and answer,
                            what="the waiting ticket")  # fmt: skip
        assert parked.json() == {
            "ticket_id": waiting.ticket_id, "team": None, "technician_id": None, "tier": 1, "status": "new",
            "unassignable_reason": f"no routing rule for category {prefix}-nobody-routes-this: it waits for one",
        }  # fmt: skip
        by_hand = process.post(f"/v1/assignments/{waiting.ticket_id}", json={"technician_id": other},
                               headers=bearer(MANAGER))  # fmt: skip
        assert by_hand.status_code == 409 and "is in no team: no routing rule" in by_hand.json()["detail"]


def poison_for(team: str, marker: str) -> dict[str, bytes]:
    """Unreadable records of the team log, by kind; each carries `marker` so the test finds its own in the DLQ."""
    routed = {
        "event_id": str(uuid.uuid4()), "event_type": "assignment.ticket_routed", "schema_version": 1,
        "occurred_at": "2026-03-02T09:00:00Z", "producer": "assignment", "correlation_id": marker,
        "data": {"team": team, "ticket": {"ticket_id": f"{marker}-ghost", "client_id": "acme", "priority": "P2",
                 "status": "new", "category": "x", "skill": "x", "version": 1}},
    }  # fmt: skip
    return {
        "not JSON": f"{marker} is not JSON".encode(),
        "wrong shape": json.dumps({**routed, "data": {"team": team, "ticket": marker}}).encode(),
        "unknown schema_version": json.dumps({**routed, "schema_version": 7}).encode(),
        "oversized": json.dumps({**routed, "padding": "x" * MAX_EVENT_BYTES}).encode(),
    }


def dead_letters_with(kafka_bootstrap: str, marker: str) -> list[tuple[bytes, str]]:
    """(original bytes, reason) of every message in assignment.by_team.dlq that carries `marker`."""
    records = read_all(kafka_bootstrap, dead_letter_topic(ASSIGNMENT_BY_TEAM))
    return [(r.value, dict(r.headers)["dlq.reason"].decode()) for r in records if marker.encode() in r.value]


def test_unreadable_team_log_records_go_to_the_dlq_once_and_the_team_keeps_deciding(kafka_bootstrap, group):
    with an_assignment_process(kafka_bootstrap, group) as process:
        prefix = set_up_teams(ready(process), {"network": "least_loaded"}, technicians_per_team=1, capacity=5)
        poison = poison_for(f"{prefix}-network", marker=prefix)
        send_raw(kafka_bootstrap, ASSIGNMENT_BY_TEAM, [(f"{prefix}-network", raw) for raw in poison.values()])
        ticket = a_ticket_created(f"{prefix}-after", category=f"{prefix}-network")
        publish(kafka_bootstrap, [ticket])
        [decision] = eventually(lambda: decisions_about(kafka_bootstrap, {ticket.ticket_id}), timeout_s=30,
                                what="the ticket created after the poison decided")  # fmt: skip
        assert decision.event_type == "assignment.assigned" and decision.data.technician_id == f"{prefix}-network-tech0"
        parked = eventually(lambda: len(found := dead_letters_with(kafka_bootstrap, prefix)) == len(poison) and found,
                            what="every unreadable record in the DLQ")  # fmt: skip
    reasons = dict(parked)
    assert set(reasons) == set(poison.values()), "the original bytes are kept"
    assert reasons[poison["not JSON"]].startswith("not JSON")
    assert reasons[poison["wrong shape"]].startswith("data.ticket")
    assert reasons[poison["unknown schema_version"]] == "unknown schema_version 7 of assignment.ticket_routed"
    assert reasons[poison["oversized"]].startswith("oversized")

    with an_assignment_process(kafka_bootstrap, group) as restarted:  # reads the log again and owns every team
        ready(restarted)
        later = a_ticket_created(f"{prefix}-later", category=f"{prefix}-network")
        publish(kafka_bootstrap, [later])
        eventually(lambda: decisions_about(kafka_bootstrap, {later.ticket_id}), timeout_s=30, what="still deciding")
        assert len(dead_letters_with(kafka_bootstrap, prefix)) == len(poison), "nothing parked twice"


def an_sla_event(kind: type[SlaWarning | SlaBreached], ticket_id: str, **data: object) -> SlaWarning | SlaBreached:
    """An SLA event as the SLA service writes it on sla.events."""
    clock = {
        "metric": "resolution", "policy_id": "std", "policy_version": 1, "calendar_id": "office",
        "calendar_version": 1, "target_business_seconds": 3600, "deadline": a_ticket_created().occurred_at,
        "elapsed_business_seconds": 3300, "remaining_business_seconds": 300, **data,
    }  # fmt: skip
    return kind(event_id=uuid.uuid4(), occurred_at=a_ticket_created().occurred_at, ticket_id=ticket_id,
                client_id="acme", producer="sla", correlation_id="test", data=clock)  # fmt: skip


def test_tickets_at_risk_escalate_to_tier_2_and_a_manual_assignment_overrides(kafka_bootstrap, group):
    with an_assignment_process(kafka_bootstrap, group) as process:
        prefix = set_up_teams(ready(process), {"network": "least_loaded"}, technicians_per_team=2, capacity=5)
        senior = f"{prefix}-network-senior"
        profile = {"name": "Senior", "team": f"{prefix}-network", "tier": 2, "skills": [], "capacity": 5}
        assert process.put(f"/v1/technicians/{senior}", json=profile, headers=bearer(MANAGER)).status_code == 200
        assert process.post(f"/v1/technicians/{senior}/shift", json={"on_shift": True},
                            headers=bearer(MANAGER)).status_code == 200  # fmt: skip
        warned, breached = (a_ticket_created(f"{prefix}-{name}", category=f"{prefix}-network")
                            for name in ("warned", "breached"))  # fmt: skip
        publish(kafka_bootstrap, [warned, breached])
        ids = {warned.ticket_id, breached.ticket_id}
        first = eventually(lambda: len(found := latest_by_ticket(decisions_about(kafka_bootstrap, ids))) == 2 and found,
                           timeout_s=30, what="both tickets assigned")  # fmt: skip
        assert {event.data.tier for event in first.values()} == {1}, "a new ticket goes to tier 1"

        early = an_sla_event(SlaWarning, warned.ticket_id, threshold=0.75)
        last = an_sla_event(SlaWarning, warned.ticket_id, threshold=0.9)
        breach = an_sla_event(SlaBreached, breached.ticket_id, remaining_business_seconds=-60)
        publish(kafka_bootstrap, [early, last, breach], topic=SLA_EVENTS)
        escalated = eventually(
            lambda: len(found := {e.ticket_id: e for e in decisions_about(kafka_bootstrap, ids)
                                  if e.event_type == "assignment.escalated"}) == 2 and found,
            timeout_s=30, what="both tickets escalated",
        )  # fmt: skip
        assert escalated[warned.ticket_id].data.trigger_event_id == last.event_id, "75% used does not escalate"
        assert escalated[warned.ticket_id].data.reason == "SLA resolution 90% used: escalated to tier 2"
        assert escalated[breached.ticket_id].data.trigger_event_id == breach.event_id
        assert {(e.data.from_tier, e.data.to_tier) for e in escalated.values()} == {(1, 2)}

        def reassigned_at_tier_2() -> dict[str, Envelope] | None:
            found = latest_by_ticket(decisions_about(kafka_bootstrap, ids))
            return found if all(event.data.tier == 2 for event in found.values()) else None

        now = eventually(reassigned_at_tier_2, what="both tickets reassigned at tier 2")
        for ticket_id, event in now.items():
            assert (event.data.technician_id, event.data.strategy) == (senior, "least_loaded")
            assert event.data.previous_technician_id == first[ticket_id].data.technician_id

        back = first[warned.ticket_id].data.technician_id
        taken = process.post(f"/v1/assignments/{warned.ticket_id}", json={"technician_id": back},
                             headers=bearer(MANAGER))  # fmt: skip
        assert taken.status_code == 200 and taken.json()["technician_id"] == back
        manual = eventually(
            lambda: (
                (latest := latest_by_ticket(decisions_about(kafka_bootstrap, ids))[warned.ticket_id]).data.strategy
                == "manual"
                and latest
            ),
            what="the manual assignment on assignment.events",
        )
        assert (manual.data.technician_id, manual.data.assigned_by, manual.data.previous_technician_id) == (
            back, "manager", senior)  # fmt: skip
        assert manual.data.reason == "assigned by hand by manager"


def test_tickets_no_rule_routes_are_assigned_once_a_rule_for_their_category_comes(kafka_bootstrap, group):
    with an_assignment_process(kafka_bootstrap, group) as process:
        prefix = set_up_teams(ready(process), {"network": "least_loaded"}, technicians_per_team=1, capacity=5)
        category = f"{prefix}-wifi"
        waiting = a_ticket_created(f"{prefix}-waiting", category=category, priority="P3")
        publish(kafka_bootstrap, [waiting])
        [unroutable] = eventually(lambda: decisions_about(kafka_bootstrap, {waiting.ticket_id}), timeout_s=30,
                                  what="the ticket found unassignable")  # fmt: skip
        assert unroutable.event_type == "assignment.unassignable"
        assert unroutable.data.reason.startswith(f"no team takes category {category}")
        reprioritised = TicketUpdated(
            event_id=uuid.uuid4(), occurred_at=waiting.occurred_at, ticket_id=waiting.ticket_id, client_id="acme",
            aggregate_version=2, producer="intake", correlation_id="test",
            data={"changes": {"priority": "P1"}, "previous": {"priority": "P3"}},
        )  # fmt: skip
        publish(kafka_bootstrap, [reprioritised])
        eventually(lambda: process.app.state.team_log.desk.parked.get(waiting.ticket_id, waiting).version == 2,
                   what="the change kept with the waiting ticket")  # fmt: skip

        answer = process.put(f"/v1/routing/categories/{category}", json={"team": f"{prefix}-network"},
                             headers=bearer(MANAGER))  # fmt: skip
        assert answer.status_code == 200
        assigned = eventually(
            lambda: latest_by_ticket(decisions_about(kafka_bootstrap, {waiting.ticket_id}))[waiting.ticket_id]
            if len(decisions_about(kafka_bootstrap, {waiting.ticket_id})) == 2 else None,
            timeout_s=30, what="the waiting ticket assigned once its category has a team",
        )  # fmt: skip
        assert assigned.event_type == "assignment.assigned"
        assert (assigned.data.team, assigned.data.technician_id) == (f"{prefix}-network", f"{prefix}-network-tech0")
        view = process.get(f"/v1/technicians/{prefix}-network-tech0", headers=bearer(ADMIN)).json()
        assert (view["open_tickets"], view["weighted_load"]) == (1, 4), "it arrived with its change: P1 weighs 4"


def test_a_ticket_of_a_service_goes_to_its_owner_team_unless_a_rule_of_its_category_says_otherwise(
    kafka_bootstrap, group
):
    with an_assignment_process(kafka_bootstrap, group) as process:
        prefix = set_up_teams(ready(process), {"network": "least_loaded"}, technicians_per_team=1, capacity=5)
        category = f"{prefix}-vpn"
        append_to_sla_config(kafka_bootstrap, f"{prefix}-vpn-service", f"{prefix}-network", [category])
        ticket = a_ticket_created(f"{prefix}-vpn-ticket", category=category, priority="P3")
        publish(kafka_bootstrap, [ticket])
        [assigned] = eventually(lambda: decisions_about(kafka_bootstrap, {ticket.ticket_id}), timeout_s=30,
                                what="the ticket assigned in its service's owner team")  # fmt: skip
        assert assigned.event_type == "assignment.assigned"
        assert (assigned.data.team, assigned.data.technician_id) == (f"{prefix}-network", f"{prefix}-network-tech0")
        assert assigned.data.reason.endswith(f"the team is the owner team of service VPN {prefix}")


def append_to_sla_config(kafka_bootstrap: str, service_id: str, owner_team: str, categories: list[str]) -> None:
    """A published service as sla appends one to sla.config (a PUT of the catalogue)."""
    name = f"VPN {service_id.removesuffix('-vpn-service')}"
    body = {"name": name, "owner_team": owner_team, "categories": categories, "published": True,
            "targets": {"P3": {"first_response_minutes": 60, "resolution_minutes": 480}}}  # fmt: skip
    change = config(ServiceChanged, datetime.now(UTC) - timedelta(minutes=1), service_id=service_id, data=body)
    send_raw(kafka_bootstrap, SLA_CONFIG, [(config_key(change).decode(), change.model_dump_json().encode())])


# --- configuration PUTs: a retry changes nothing ----------------------------------------------------------------


def roster_records(kafka_bootstrap: str, event_type: str, **about: str) -> list[dict[str, Any]]:
    """Every roster record of `event_type` on the team log whose data has the values of `about`."""
    found = []
    for record in read_all(kafka_bootstrap, ASSIGNMENT_BY_TEAM):
        try:
            value = json.loads(record.value)
        except ValueError:
            continue  # another test's poison
        if not isinstance(value, dict) or value.get("event_type") != event_type:
            continue
        if all(value["data"].get(field) == wanted for field, wanted in about.items()):
            found.append(value)
    return found


def replayed(answer: httpx2.Response) -> bool:
    return answer.headers.get("Idempotent-Replayed") == "true"


def concurrently(process: TestClient, method: str, path: str, body: dict[str, Any]) -> list[httpx2.Response]:
    """The same request twice at once into the process's own event loop: a retry racing with itself."""

    async def send_both() -> list[httpx2.Response]:
        transport = httpx2.ASGITransport(app=process.app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://assignment") as client:
            sent = [client.request(method, path, json=body, headers=bearer(MANAGER)) for _ in range(2)]
            return list(await asyncio.gather(*sent))

    assert process.portal is not None
    return process.portal.call(send_both)


def roster_changes(prefix: str) -> list[tuple[str, str, dict[str, Any], str, dict[str, str]]]:
    """(method, path, body, the record it appends, what the record is about) of each kind of roster change."""
    team, technician, category = f"{prefix}-desk", f"{prefix}-ann", f"{prefix}-vpn"
    profile = {"name": "Ann", "team": team, "tier": 1, "skills": ["vpn"], "capacity": 3}
    return [
        ("PUT", f"/v1/technicians/{technician}", profile, "assignment.technician_profiled",
         {"technician_id": technician}),
        ("PUT", f"/v1/routing/categories/{category}", {"team": team}, "assignment.category_routed",
         {"category": category}),
        ("PUT", f"/v1/routing/teams/{team}", {"strategy": "skills"}, "assignment.team_strategy_chosen", {"team": team}),
        ("POST", f"/v1/technicians/{technician}/shift", {"on_shift": True}, "assignment.shift_changed",
         {"technician_id": technician}),
    ]  # fmt: skip


def test_a_repeated_roster_change_appends_nothing(kafka_bootstrap, group):
    prefix = uuid.uuid4().hex[:6]
    with an_assignment_process(kafka_bootstrap, group) as process:
        ready(process)
        for method, path, body, event_type, about in roster_changes(prefix):
            first = process.request(method, path, json=body, headers=bearer(MANAGER))
            again = process.request(method, path, json=body, headers=bearer(MANAGER))
            assert (first.status_code, again.status_code) == (200, 200), again.text
            assert not replayed(first) and replayed(again), path
            assert again.json() == first.json(), path
            assert len(roster_records(kafka_bootstrap, event_type, **about)) == 1, path

        technician = f"{prefix}-ann"
        profile = {"name": "Ann", "team": f"{prefix}-desk", "tier": 1, "skills": ["vpn"], "capacity": 4}
        changed = process.put(f"/v1/technicians/{technician}", json=profile, headers=bearer(MANAGER))
        assert changed.status_code == 200 and not replayed(changed) and changed.json()["capacity"] == 4
        off = process.post(f"/v1/technicians/{technician}/shift", json={"on_shift": False}, headers=bearer(MANAGER))
        assert off.status_code == 200 and not replayed(off) and off.json()["on_shift"] is False
        assert len(roster_records(kafka_bootstrap, "assignment.technician_profiled", technician_id=technician)) == 2
        assert len(roster_records(kafka_bootstrap, "assignment.shift_changed", technician_id=technician)) == 2


def test_a_roster_change_racing_with_its_own_retry_appends_once(kafka_bootstrap, group):
    prefix = uuid.uuid4().hex[:6]
    with an_assignment_process(kafka_bootstrap, group) as process:
        ready(process)
        for method, path, body, event_type, about in roster_changes(prefix):
            answers = concurrently(process, method, path, body)
            assert [answer.status_code for answer in answers] == [200, 200], [answer.text for answer in answers]
            assert sorted(map(replayed, answers)) == [False, True], path
            assert len(roster_records(kafka_bootstrap, event_type, **about)) == 1, path


def test_two_processes_taking_the_same_profile_at_once_make_one_change(two_processes, kafka_bootstrap):
    """Neither process may see the other's record before it appends its own: the twin then carries the same event
    id, and folding it changes nothing."""
    first, second = two_processes
    prefix = uuid.uuid4().hex[:6]
    technician, team = f"{prefix}-bo", f"{prefix}-desk"
    profile = {"name": "Bo", "team": team, "tier": 1, "skills": [], "capacity": 2}
    assert first.put(f"/v1/technicians/{technician}", json=profile, headers=bearer(MANAGER)).status_code == 200
    eventually(lambda: second.get(f"/v1/technicians/{technician}", headers=bearer(ADMIN)).status_code == 200,
               what="both processes know the technician")  # fmt: skip
    wider = {**profile, "capacity": 5}
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(
            lambda process: process.put(f"/v1/technicians/{technician}", json=wider, headers=bearer(MANAGER)),
            (first, second),
        ))  # fmt: skip
    assert [answer.status_code for answer in answers] == [200, 200], [answer.text for answer in answers]
    profiles = roster_records(kafka_bootstrap, "assignment.technician_profiled", technician_id=technician)
    assert len({record["event_id"] for record in profiles}) == 2, "the first profile and one change"
    for process in (first, second):
        assert process.get(f"/v1/technicians/{technician}", headers=bearer(ADMIN)).json()["capacity"] == 5


def a_process_on_disk(kafka_bootstrap: str, group: str, state_dir: Path) -> TestClient:
    settings = AssignmentSettings(
        kafka_bootstrap_servers=kafka_bootstrap, consumer_group=group, state_dir=state_dir, **IN_PROCESS
    )
    return TestClient(build_app(settings, TEST_KEYS))


def desk_views(process: TestClient, tickets: list[str], technicians: list[str]) -> list[Any]:
    """What the process answers about the tickets and technicians."""
    views = [process.get(f"/v1/assignments/{ticket}", headers=bearer(ADMIN)).json() for ticket in tickets]
    return views + [process.get(f"/v1/technicians/{tech}", headers=bearer(ADMIN)).json() for tech in technicians]


def test_a_restart_resumes_from_its_last_checkpoint_on_disk_as_a_process_reading_the_whole_log_would_stand(
    kafka_bootstrap, group, tmp_path, monkeypatch
):
    """Killed after decisions its last checkpoint does not have, a process folds the team log again from that
    checkpoint: its own decisions' outcomes written before it are not applied twice, those after it are applied."""
    monkeypatch.setattr("assignment.teamlog.CHECKPOINT_EVERY_S", 0.0)  # a checkpoint after every batch
    with a_process_on_disk(kafka_bootstrap, group, tmp_path) as first:
        prefix = set_up_teams(ready(first), {"network": "least_loaded"}, technicians_per_team=2, capacity=2)
        technicians = [f"{prefix}-network-tech{n}" for n in range(2)]
        tickets = [a_ticket_created(f"{prefix}-t{n}", category=f"{prefix}-network") for n in range(6)]
        ids = [ticket.ticket_id for ticket in tickets]
        publish(kafka_bootstrap, tickets)
        latest = eventually(lambda: len(found := latest_by_ticket(decisions_about(kafka_bootstrap, set(ids)))) == 6
                            and found, timeout_s=30, what="six decisions")  # fmt: skip
        assigned = sorted(e.ticket_id for e in latest.values() if e.event_type == "assignment.assigned")
        waiting = sorted(set(ids) - set(assigned))
        assert len(assigned) == 4

        # The last checkpoint: the one right after the process decided for the first ticket resolved, before it
        # reads its decision back; the second ticket resolved is decided after it. Then the process stops as if
        # killed (no checkpoint on stopping).
        last = freeze_checkpoints_once_ahead_of_the_fold(monkeypatch)
        publish(kafka_bootstrap, [status_change(assigned[0], 2, "resolved")])
        eventually(lambda: last, what="a checkpoint with a decision not read back")
        publish(kafka_bootstrap, [status_change(assigned[1], 2, "resolved")])
        eventually(lambda: {e.event_type for t, e in latest_by_ticket(decisions_about(kafka_bootstrap, set(waiting)))
                            .items()} == {"assignment.assigned"}, what="both waiting tickets assigned")  # fmt: skip
        before = desk_views(first, ids, technicians)
    monkeypatch.undo()

    with a_process_on_disk(kafka_bootstrap, group, tmp_path) as restarted:
        ready(restarted)
        assert restarted.app.state.team_log.resumed_from == last[0], "resumed from the checkpoint on disk"
        assert desk_views(restarted, ids, technicians) == before
        with an_assignment_process(kafka_bootstrap, f"{group}-reader") as whole_log:  # its own store, read whole
            assert ready(whole_log).app.state.team_log.resumed_from is None
            assert desk_views(whole_log, ids, technicians) == before
        stopped_at = dict(restarted.app.state.team_log.partitions.positions)
    events = decisions_about(kafka_bootstrap, set(ids))
    assert len({e.event_id for e in events if e.event_type == "assignment.assigned"}) == 6, "each decided once"

    with a_process_on_disk(kafka_bootstrap, group, tmp_path) as again:  # stopped as production stops it
        resumed_from = ready(again).app.state.team_log.resumed_from
        assert resumed_from is not None and all(resumed_from[p] >= offset for p, offset in stopped_at.items())
        assert desk_views(again, ids, technicians) == before


def freeze_checkpoints_once_ahead_of_the_fold(monkeypatch) -> list[dict[int, int]]:
    """From now on, one more checkpoint only: the first taken with decisions of this process not read back yet.
    Returns a list that gets the positions it wrote."""
    taken: list[dict[int, int]] = []
    checkpoint = TeamLog._checkpoint

    async def once(self: TeamLog) -> None:
        if taken:
            return
        await checkpoint(self)
        if pickle.loads(self.archive.last_checkpoint()[0])[3]:  # decisions ahead of the positions
            taken.append(dict(self.partitions.positions))

    monkeypatch.setattr(TeamLog, "_checkpoint", once)
    monkeypatch.setattr(TeamLog, "checkpoint", no_checkpoint)
    return taken


async def no_checkpoint(self: object) -> None:
    pass


def test_a_killed_replicas_work_goes_to_the_survivor_without_waiting_for_its_session(tmp_path):
    """Two assignment processes, sessions of two minutes: the groups alone would leave a killed one's ticket
    partitions (the router's group) and teams (the teams group) unheld for two minutes. The survivor finds nothing
    listening at its presence port nor at its HTTP port, removes it from both groups, and assigns every new ticket
    long before. (A broker of its own: a kill must not disturb the session's, nor these processes route the tickets
    other tests left on tickets.events.)"""
    with replicas("assignment", 2, tmp_path, SESSION_TIMEOUT_SECONDS="120") as (bootstrap, (victim, survivor)):
        with httpx.Client(base_url=survivor.url, timeout=10) as http:
            prefix = set_up_teams(http, TEAMS, technicians_per_team=1, capacity=20)  # type: ignore[arg-type]

        def all_assigned(tickets: list[Envelope]) -> bool:
            latest = latest_by_ticket(decisions_about(bootstrap, {ticket.ticket_id for ticket in tickets}))
            assigned = [event for event in latest.values() if event.event_type == "assignment.assigned"]
            return len(assigned) == len(tickets)

        def some_tickets(batch: str) -> list[Envelope]:
            """Two of every team's: their ticket ids spread over the router's partitions."""
            return [
                a_ticket_created(f"{prefix}-{batch}{n}", category=f"{prefix}-{team}")
                for n, team in enumerate(list(TEAMS) * 2)
            ]

        before = some_tickets("before")
        publish(bootstrap, before)
        eventually(lambda: all_assigned(before), timeout_s=60, what="the tickets assigned by both processes")
        assert metric(survivor.url, EVICTED) == 0
        victim.kill9()
        after = some_tickets("after")
        publish(bootstrap, after)
        eventually(lambda: all_assigned(after), timeout_s=60, what="the survivor assigning every ticket")
        # Removed from both groups (the router's, the teams'), one eviction each.
        eventually(lambda: metric(survivor.url, EVICTED) == 2, what="the victim removed from both groups")
