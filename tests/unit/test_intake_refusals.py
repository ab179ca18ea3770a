"""Every refusal intake gives: its HTTP status, its journey between replicas, and what tickets.inbound does with it."""

import asyncio
import json
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from intake import api, owners
from intake.domain import (
    REFUSALS,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidCommand,
    LifecycleRules,
    NotPermitted,
    NotReady,
    TicketNotFound,
    TicketUnreadable,
    VersionConflict,
)
from intake.inbound import InboundRequests, decode_request
from tests.builders import T0
from ticketstream_shared.runtime.consumer import Delivery

#: The status of each refusal, written out: the table in api.py must say the same.
EXPECTED = {
    TicketNotFound: 404,
    VersionConflict: 409,
    IdempotencyKeyReused: 409,
    IllegalTransition: 409,
    NotPermitted: 403,
    InvalidCommand: 422,
    NotReady: 503,
    TicketUnreadable: 503,
}

SAMPLES = [
    TicketNotFound("no ticket t-9"),
    VersionConflict("the ticket is at version 3"),
    IdempotencyKeyReused("this key was first used for add_worklog", ("body.minutes", "body.note")),
    IllegalTransition("a closed ticket cannot be resolved"),
    NotPermitted("requesters write public comments only"),
    InvalidCommand("performed_at", "is in the future"),
    NotReady("intake is reading its log"),
    TicketUnreadable("ticket t-9: its history holds an event this version of intake cannot read (schema_version)"),
]


def test_every_refusal_has_its_status_and_travels_between_replicas():
    assert dict(api.STATUS_OF) == EXPECTED
    assert set(REFUSALS) == set(EXPECTED) == {type(sample) for sample in SAMPLES}


@pytest.mark.parametrize("refusal", SAMPLES, ids=lambda refusal: type(refusal).__name__)
def test_a_refusal_from_the_owner_arrives_as_itself(refusal):
    """Before: NotReady was missing from owners' table and arrived as a bare DomainError (a 409, a DLQ entry)."""
    reply = json.loads(json.dumps(owners.refusal_reply(refusal)))  # as it crosses the replies topic
    arrived = owners.refusal_of(reply)
    assert type(arrived) is type(refusal) and str(arrived) == str(refusal)
    assert vars(arrived) == vars(refusal)


def _answering(refusal):
    app = FastAPI()

    @app.get("/refuse")
    async def refuse():
        raise refusal

    api.install_domain_refusals(app)
    return TestClient(app, raise_server_exceptions=False).get("/refuse")


@pytest.mark.parametrize("refusal", SAMPLES, ids=lambda refusal: type(refusal).__name__)
def test_each_refusal_answers_its_status_and_says_why(refusal):
    answer = _answering(refusal)
    assert answer.status_code == EXPECTED[type(refusal)]
    body = answer.json()
    if isinstance(refusal, InvalidCommand):
        assert body["errors"] == [{"field": "performed_at", "message": "is in the future"}]
    else:
        assert body["detail"] == str(refusal)
    if isinstance(refusal, IdempotencyKeyReused):
        assert body["differs"] == ["body.minutes", "body.note"]
    assert ("Retry-After" in answer.headers) == isinstance(refusal, NotReady)


def test_an_unlisted_error_is_a_defect_and_not_a_guessed_status():
    from intake.domain import DomainError

    assert _answering(DomainError("a refusal nobody listed")).status_code == 500


class _Desk:
    """Refuses with `refusal` the first `times` calls, then carries the command out."""

    def __init__(self, refusal, times):
        self.refusal, self.times, self.calls = refusal, times, 0

    async def execute(self, command, context):
        self.calls += 1
        if self.calls <= self.times:
            raise self.refusal
        return None, False


def _inbound_worklog():
    raw = json.dumps(
        {
            "type": "add_worklog",
            "request_id": "r-1",
            "ticket_id": "t-1",
            "data": {"technician_id": "tech-1", "minutes": 30, "billable": True},
        }
    ).encode()
    return Delivery(decode_request(raw), "tickets.inbound", 0, 7)


def _handled(desk):
    inbound = InboundRequests(desk, lambda: T0 + timedelta(hours=1), LifecycleRules())
    return asyncio.run(inbound.handle([_inbound_worklog()]))


def test_an_inbound_request_an_owner_is_not_ready_for_is_tried_again_not_dead_lettered():
    desk = _Desk(NotReady("partitions are changing hands"), times=2)
    assert _handled(desk) == []
    assert desk.calls == 3


def test_an_inbound_request_refused_for_a_reason_goes_to_the_dlq_with_it():
    desk = _Desk(IdempotencyKeyReused("this key was first used for add_comment", ("operation",)), times=1)
    ((delivery, reason),) = _handled(desk)
    assert delivery.offset == 7 and reason.startswith("IdempotencyKeyReused: this key was first used for add_comment")
    assert desk.calls == 1
