"""The event contract: round trips, clear reasons for bad messages, schemas in step with the models."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.builders import T0, a_ticket_created, a_worklog_recorded
from tests.reporting_events import an_assignment, an_escalation, an_sla_event
from ticketstream_shared.contract import (
    Actor,
    CommentAdded,
    InvalidEvent,
    NotReadHere,
    TicketCreated,
    UnknownEventType,
    decode_assignment_event,
    decode_sla_event,
    decode_ticket_event,
    decoder_reading,
    encode,
    read_logged,
)
from ticketstream_shared.contract.codec import (
    MAX_EVENT_BYTES,
    decode_article_change,
    decode_delivery_record,
    decode_notify_config_change,
    decode_sla_config_change,
    event_type_as_encoded,
)
from ticketstream_shared.contract.events import TICKET_EVENT_TYPES
from ticketstream_shared.contract.knowledge import ArticleChanged, ArticleData
from ticketstream_shared.contract.legacy import LEGACY_EVENT_TYPES
from ticketstream_shared.contract.notify import DeliveryChannel, PersonChanged, PersonEntry, RedeliveryRequested
from ticketstream_shared.contract.schema import generate_schemas
from ticketstream_shared.contract.sla import CalendarChanged, CalendarData
from ticketstream_shared.contract.topics import TICKETS_EVENTS

SCHEMAS = Path(__file__).parents[2] / "shared" / "schemas"


def test_events_survive_the_wire_unchanged():
    created = a_ticket_created()
    worklog = a_worklog_recorded(created.ticket_id, 2, minutes=90)
    for event in (created, worklog):
        assert decode_ticket_event(encode(event)) == event


def test_times_are_normalised_to_utc_on_the_wire():
    from datetime import datetime, timedelta, timezone

    berlin_morning = datetime(2026, 3, 2, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    event = a_ticket_created(occurred_at=berlin_morning)
    assert b'"occurred_at":"2026-03-02T09:00:00Z"' in encode(event)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"x" * (MAX_EVENT_BYTES + 1), "oversized"),
        (b'{"event_type": "ticket.created"}', "event_id: Field required"),
    ],
)
def test_unreadable_messages_are_refused_with_a_reason(raw, reason):
    with pytest.raises(InvalidEvent) as refused:
        decode_ticket_event(raw)
    assert reason in refused.value.reason


def test_a_field_of_the_wrong_shape_is_named():
    bad = encode(a_ticket_created()).replace(b'"P2"', b'"P9"')
    with pytest.raises(InvalidEvent) as refused:
        decode_ticket_event(bad)
    assert "data.priority" in refused.value.reason


def test_a_newer_event_type_is_told_apart_from_garbage():
    newer = encode(a_ticket_created()).replace(b'"ticket.created"', b'"ticket.merged"')
    with pytest.raises(UnknownEventType):
        decode_ticket_event(newer)


def test_fields_added_later_do_not_break_older_readers():
    event = a_ticket_created()
    extended = encode(event).replace(b'"producer"', b'"added_later":1,"producer"')
    assert decode_ticket_event(extended) == event


def test_checked_in_schemas_match_the_models():
    """Fails when a model changed without `make schemas`: the published contract must not drift."""
    generated = generate_schemas()
    checked_in = {path.name: path.read_text() for path in SCHEMAS.glob("*.json")}
    assert checked_in == generated


def test_the_contract_installs_with_pydantic_alone():
    """Other systems import the contract without our service plumbing."""
    plumbing = "{'aiokafka', 'fastapi', 'pydantic_settings', 'prometheus_client'}"
    loaded = "{m.split('.')[0] for m in sys.modules}"
    probe = f"import sys, ticketstream_shared.contract; print(sorted({loaded} & {plumbing}))"
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert found.strip() == "[]"


def test_the_asyncapi_document_names_every_topic_and_event_and_its_references_resolve():
    from ticketstream_shared.contract.codec import EVENT_TYPES_BY_TOPIC
    from ticketstream_shared.contract.schema import asyncapi

    document = asyncapi()
    for topic, models in EVENT_TYPES_BY_TOPIC.items():
        listed = set(document["channels"][topic]["messages"])
        assert listed == {model.model_fields["event_type"].default for model in models}
        assert f"{topic}.dlq" in document["channels"]
    assert "tickets.inbound" in document["channels"]

    def references(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and value.startswith("#/"):
                    yield value
                else:
                    yield from references(value)
        elif isinstance(node, list):
            for item in node:
                yield from references(item)

    for reference in references(document):
        target = document
        for part in reference[2:].split("/"):
            target = target[part]
        assert target, reference
    published = {path.name for path in SCHEMAS.glob("*.json")}
    for message in document["components"]["messages"].values():
        if message["payload"].get("$ref", "").startswith("https://"):
            assert message["payload"]["$ref"].rsplit("/", 1)[1] in published


def test_a_comment_of_schema_version_1_is_read_as_the_current_version():
    """Events written before the bump stay readable forever: the codec upcasts them on the way in (v1 -> v2 ->
    v3, its actor not recorded -> v4, its body in plain text)."""
    from ticketstream_shared.contract import CommentAdded
    from ticketstream_shared.contract.legacy import CommentAddedV1

    for public, visibility in ((True, "public"), (False, "internal")):
        old = CommentAddedV1(
            event_id=uuid.uuid4(),
            occurred_at=T0,
            ticket_id="t-1",
            client_id="acme",
            aggregate_version=2,
            producer="intake",
            correlation_id="c",
            data={
                "comment_id": uuid.uuid4(),
                "author_id": "tech-1",
                "author_role": "technician",
                "body": "hi",
                "public": public,
            },
        )
        read = decode_ticket_event(encode(old))
        assert isinstance(read, CommentAdded) and (read.schema_version, read.actor) == (4, None)
        assert (read.data.visibility, read.data.public) == (visibility, public)
        assert (read.event_id, read.data.comment_id, read.data.body) == (old.event_id, old.data.comment_id, "hi")


#: A value of `data` for each ticket event type.
DATA = {
    "ticket.created": {"requester_id": "alice", "title": "VPN", "category": "network", "priority": "P2"},
    "ticket.updated": {"changes": {"priority": "P1"}, "previous": {"priority": "P2"}},
    "ticket.status_changed": {"from_status": "new", "to_status": "open"},
    "ticket.comment_added": {"comment_id": str(uuid.UUID(int=1)), "author_id": "ann", "author_role": "technician",
                             "body": "hi", "visibility": "public"},
    "ticket.worklog_recorded": {"worklog_id": str(uuid.UUID(int=2)), "technician_id": "ann", "minutes": 30,
                                "billable": True, "performed_at": T0.isoformat()},
    "ticket.worklog_corrected": {"worklog_id": str(uuid.UUID(int=2)), "technician_id": "ann", "minutes": 15,
                                 "billable": True, "performed_at": T0.isoformat(), "reason": "typo"},
    "ticket.worklog_voided": {"worklog_id": str(uuid.UUID(int=2)), "reason": "twice"},
    "ticket.csat_recorded": {"rating": 5},
}  # fmt: skip


@pytest.mark.parametrize("current", TICKET_EVENT_TYPES, ids=lambda model: model.model_fields["event_type"].default)
def test_a_ticket_event_written_before_actors_were_recorded_is_read_with_no_actor(current):
    """Every ticket event type as it was published before its actor: read as the current version, its actor not
    recorded, everything else as written."""
    event_type = current.model_fields["event_type"].default
    before = max(
        (
            model
            for model in LEGACY_EVENT_TYPES
            if model.model_fields["event_type"].default == event_type and "actor" not in model.model_fields
        ),
        key=lambda model: model.model_fields["schema_version"].default,
    )
    old = before(
        event_id=uuid.uuid4(), occurred_at=T0, ticket_id="t-1", client_id="acme", aggregate_version=2,
        producer="intake", correlation_id="c", data=DATA[event_type],
    )  # fmt: skip
    assert b'"actor"' not in encode(old)
    read = decode_ticket_event(encode(old))
    assert type(read) is current and read.actor is None
    assert read.model_dump(exclude={"actor", "schema_version"}) == old.model_dump(exclude={"schema_version"})
    actor = Actor(key_name="ops", role="manager", subject="maria", on_behalf_of="ann")
    now = current.model_validate({**read.model_dump(), "actor": actor, "schema_version": read.schema_version})
    assert decode_ticket_event(encode(now)).actor == actor


MANAGER = Actor(key_name="ops-lead", role="manager", subject="maria")
ALWAYS = CalendarData(timezone="UTC", always_open=True)
CONFIGURED = {"occurred_at": T0, "producer": "test", "correlation_id": "c", "changed_by": "ops-lead", "actor": MANAGER}


@pytest.mark.parametrize(
    ("written", "decode"),
    [
        (
            CalendarChanged(event_id=uuid.uuid4(), effective_at=T0, calendar_id="berlin", data=ALWAYS,
                            **CONFIGURED),
            decode_sla_config_change,
        ),
        (
            ArticleChanged(event_id=uuid.uuid4(), article_id="vpn", data=ArticleData(title="VPN", body="Restart."),
                           **CONFIGURED),
            decode_article_change,
        ),
        (
            PersonChanged(event_id="p-1", person_id="ann", data=PersonEntry(name="Ann", email="ann@example.org"),
                          **CONFIGURED),
            decode_notify_config_change,
        ),
        (
            RedeliveryRequested(delivery_id="d-1", occurred_at=T0, channel=DeliveryChannel.WEBHOOK, target="wh",
                                requested_by="ops-lead", actor=MANAGER),
            decode_delivery_record,
        ),
        (an_sla_event("breached", "t-1"), decode_sla_event),
        (an_assignment("t-1", "ann"), decode_assignment_event),
        (an_escalation("t-1"), decode_assignment_event),
    ],
    ids=["sla.calendar_changed", "knowledge.article_changed", "notify.person_changed", "notify.redelivery_requested",
         "sla.breached", "assignment.assigned", "assignment.escalated"],
)  # fmt: skip
def test_an_event_or_change_from_before_actors_is_read_with_no_actor(written, decode):
    """sla's and assignment's events, every configuration log's changes and notify's delivery records: the shape
    published before validates it, and it reads as the current version, with no actor, the rest as written."""
    assert decode(encode(written)) == written
    old = json.loads(encode(written))
    del old["actor"]
    old["schema_version"] = 1
    [shape] = [
        model
        for model in LEGACY_EVENT_TYPES
        if (model.model_fields["event_type"].default, model.model_fields["schema_version"].default)
        == (old["event_type"], 1)
    ]
    shape.model_validate(old)  # the shape published before
    read = decode(json.dumps(old).encode())
    assert type(read) is type(written) and read.actor is None
    assert read.model_dump(exclude={"actor"}) == written.model_dump(exclude={"actor"})


@pytest.mark.parametrize("current", TICKET_EVENT_TYPES, ids=lambda model: model.model_fields["event_type"].default)
def test_an_event_read_back_by_its_writer_is_its_json_at_the_current_version(current):
    """`read_logged` (intake's replay of its own log) gives what decode_event's model writes, without the model: for
    an event as written today, and for one written before actors were recorded."""
    event_type = current.model_fields["event_type"].default
    envelope = {"event_id": uuid.uuid4(), "occurred_at": T0, "ticket_id": "t-1", "client_id": "acme",
                "aggregate_version": 2, "producer": "intake", "correlation_id": "c",
                "data": DATA[event_type]}  # fmt: skip
    before = max(
        (model for model in LEGACY_EVENT_TYPES if model.model_fields["event_type"].default == event_type),
        key=lambda model: model.model_fields["schema_version"].default,
    )
    for written in (encode(current(**envelope)), encode(before(**envelope))):
        read = read_logged(TICKETS_EVENTS, written)
        assert read == json.loads(encode(decode_ticket_event(written)))
        assert read["schema_version"] == current.model_fields["schema_version"].default


def test_a_comment_of_schema_version_1_is_read_back_upcast():
    from ticketstream_shared.contract.legacy import CommentAddedV1

    old = CommentAddedV1(
        event_id=uuid.uuid4(), occurred_at=T0, ticket_id="t-1", client_id="acme", aggregate_version=2,
        producer="intake", correlation_id="c",
        data={"comment_id": uuid.uuid4(), "author_id": "ann", "author_role": "technician", "body": "hi",
              "public": False},
    )  # fmt: skip
    read = read_logged(TICKETS_EVENTS, encode(old))
    assert (read["schema_version"], read["actor"], read["data"]["visibility"]) == (4, None, "internal")


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe",
        b"[1, 2]",
        b"x" * (MAX_EVENT_BYTES + 1),
        b'{"event_type": "ticket.created"}',
        encode(a_ticket_created()).replace(b'"ticket.created"', b'"ticket.merged"'),
        encode(a_ticket_created()).replace(b'"schema_version":3', b'"schema_version":99'),
        encode(a_ticket_created()).replace(b'"schema_version":3', b'"schema_version":"3"'),
    ],
    ids=["not JSON", "not an object", "oversized", "no envelope", "unknown type", "newer version", "version as text"],
)
def test_what_the_reading_back_refuses_it_refuses_as_decode_event_does(raw):
    with pytest.raises(InvalidEvent) as refused:
        decode_ticket_event(raw)
    with pytest.raises(type(refused.value)) as also:
        read_logged(TICKETS_EVENTS, raw)
    assert also.value.reason == refused.value.reason


def test_an_event_another_writer_put_on_the_log_is_read_back_only_as_decode_event_reads_it():
    """Only what the log's own writer wrote (and validated as it wrote) is read back without the model: a title over
    the contract's limit is refused from another writer, as decode_event refuses it."""
    written = json.loads(encode(a_ticket_created()))
    written["data"]["title"] = "x" * 201
    for producer, refused in (("intake", False), ("mailer", True)):
        raw = json.dumps({**written, "producer": producer}).encode()
        if refused:
            with pytest.raises(InvalidEvent) as refusal:
                read_logged(TICKETS_EVENTS, raw)
            assert refusal.value.reason == "ticket.created.data.title: should have at most 200 characters"
        else:
            assert read_logged(TICKETS_EVENTS, raw)["data"]["title"] == "x" * 201  # trusted as its writer's
    valid = encode(a_ticket_created()).replace(b'"producer":"intake"', b'"producer":"mailer"')
    assert b'"mailer"' in valid and read_logged(TICKETS_EVENTS, valid) == json.loads(encode(decode_ticket_event(valid)))


def test_what_decode_event_reads_leniently_is_read_back_as_it_reads_it():
    """A schema_version of `true` is upcast from 1 (True == 1) by decode_event: read back the same, not refused."""
    lenient = encode(a_ticket_created()).replace(b'"schema_version":3', b'"schema_version":true')
    assert read_logged(TICKETS_EVENTS, lenient) == json.loads(encode(decode_ticket_event(lenient)))


@pytest.mark.parametrize("current", TICKET_EVENT_TYPES, ids=lambda model: model.model_fields["event_type"].default)
def test_the_type_of_an_event_as_encoded_is_read_from_its_first_bytes(current):
    event_type = current.model_fields["event_type"].default
    event = current(event_id=uuid.uuid4(), occurred_at=T0, ticket_id="t-1", client_id="acme", aggregate_version=2,
                    producer="intake", correlation_id="c", data=DATA[event_type])  # fmt: skip
    assert event_type_as_encoded(encode(event)) == event_type.encode()
    payload = json.loads(encode(event))
    assert event_type_as_encoded(json.dumps(payload).encode()) is None, "another layout (spaces): decoded whole"
    reordered = {"event_type": payload.pop("event_type"), **payload}
    assert event_type_as_encoded(json.dumps(reordered, separators=(",", ":")).encode()) is None


def test_a_type_is_not_read_from_inside_a_string():
    """An event id that carries quotes, escaped, cannot make its own text pass for the event type."""
    forged = encode(a_ticket_created()).replace(
        b'"event_id":"', b'"event_id":"x\\",\\"event_type\\":\\"ticket.csat_recorded', 1
    )
    assert event_type_as_encoded(forged) is None
    with pytest.raises(InvalidEvent):
        decoder_reading(TICKETS_EVENTS, [CommentAdded])(forged)


def test_a_reader_of_some_types_decodes_those_and_passes_over_the_rest_in_any_layout():
    read = decoder_reading(TICKETS_EVENTS, [TicketCreated])
    created = a_ticket_created()
    assert read(encode(created)) == created
    worked = a_worklog_recorded(created.ticket_id, 2)
    invalid = encode(worked).replace(b'"minutes":30', b'"minutes":-30')
    for passed_over in (encode(worked), invalid, json.dumps(json.loads(encode(worked))).encode()):
        with pytest.raises(NotReadHere):
            read(passed_over)
    with pytest.raises(InvalidEvent) as refused:
        read(json.dumps(json.loads(invalid)).encode())  # another layout: decoded whole, so judged
    assert "minutes" in refused.value.reason and not isinstance(refused.value, NotReadHere)
    with pytest.raises(InvalidEvent) as refused:
        read(encode(created).replace(b'"P2"', b'"P9"'))
    assert "data.priority" in refused.value.reason
