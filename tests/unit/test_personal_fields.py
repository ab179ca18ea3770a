"""Personal fields in the contract (contract/personal.py): plain text within its limits or a sealed value, marked in
the JSON Schemas, found by map_personal wherever they nest, and events from before sealing read as the current
version."""

import json
import uuid

import pytest
from pydantic import ValidationError

from tests.builders import T0, a_ticket_created
from ticketstream_shared.contract import TicketUpdated, decode_ticket_event, encode
from ticketstream_shared.contract.codec import decode_delivery_record, decode_notify_config_change
from ticketstream_shared.contract.legacy import SEALABLE_EVENT_TYPES
from ticketstream_shared.contract.notify import (
    DeliveryChannel,
    DeliveryScheduled,
    MailMessage,
    PersonChanged,
    PersonEntry,
    SealedMail,
)
from ticketstream_shared.contract.personal import is_sealed, map_personal
from ticketstream_shared.contract.schema import generate_schemas

SEALED = "sealed:v1:" + "ab" * 16 + ":" + "QUJD" * 10


def test_a_personal_field_takes_plain_text_within_its_limits_or_a_sealed_value():
    assert a_ticket_created(title=SEALED).data.title == SEALED
    with pytest.raises(ValidationError, match="at most 200"):
        a_ticket_created(title="x" * 201)
    with pytest.raises(ValidationError, match="may not begin with 'sealed:'"):
        a_ticket_created(title="sealed: my words, not a sealed value")
    with pytest.raises(ValidationError, match="not a well-formed sealed value"):
        a_ticket_created(title="sealed:v1:nothex:QUJD")
    with pytest.raises(ValidationError, match="not a well-formed sealed value"):
        a_ticket_created(title=SEALED[:-4] + "QUJD" * 400)  # longer than 200 characters sealed can be


def test_the_json_schemas_mark_personal_fields():
    schemas = generate_schemas()
    created = json.loads(schemas["ticket.created.v3.json"])["$defs"]["TicketCreatedData"]["properties"]
    assert {name for name, field in created.items() if field.get("x-personal")} == {"title", "description"}
    comment = json.loads(schemas["ticket.comment_added.v4.json"])["$defs"]["CommentAddedData"]["properties"]
    assert [name for name, field in comment.items() if field.get("x-personal")] == ["body"]
    before = json.loads(schemas["ticket.created.v2.json"])
    assert "x-personal" not in json.dumps(before)


def test_the_sealable_types_are_those_with_free_text():
    names = {model.model_fields["event_type"].default for model in SEALABLE_EVENT_TYPES}
    assert names == {
        "ticket.created",
        "ticket.updated",
        "ticket.comment_added",
        "ticket.worklog_recorded",
        "ticket.worklog_corrected",
        "ticket.csat_recorded",
        "notify.person_changed",
        "notify.delivery_scheduled",
        "assignment.technician_profiled",
    }


def test_map_personal_changes_personal_text_only_nested_ones_too_and_leaves_empty_text():
    created = a_ticket_created(title="My laptop", description="")
    shouted = map_personal(created, str.upper)
    assert (shouted.data.title, shouted.data.description, shouted.data.category) == ("MY LAPTOP", "", "hardware")
    assert shouted.ticket_id == created.ticket_id and created.data.title == "My laptop"
    updated = TicketUpdated(
        event_id=uuid.uuid4(), occurred_at=T0, ticket_id="t-1", client_id="acme", aggregate_version=2,
        producer="intake", correlation_id="c",
        data={"changes": {"title": "new", "priority": "P1"}, "previous": {"title": "old", "priority": "P2"}},
    )  # fmt: skip
    shouted = map_personal(updated, str.upper)
    assert (shouted.data.changes.title, shouted.data.previous.title) == ("NEW", "OLD")
    assert shouted.data.changes.priority == updated.data.changes.priority
    reprioritised = TicketUpdated.model_validate(
        {**updated.model_dump(), "data": {"changes": {"priority": "P1"}, "previous": {"priority": "P2"}}}
    )
    assert map_personal(reprioritised, str.upper) is reprioritised


def test_an_event_from_before_sealing_reads_as_the_current_version():
    current = a_ticket_created(title="VPN down")
    old = json.loads(encode(current))
    old["schema_version"] = 2
    read = decode_ticket_event(json.dumps(old).encode())
    assert read == current and not is_sealed(read.data.title)


def test_a_persons_name_and_address_are_personal_and_the_address_plain_must_be_one():
    entry = PersonEntry(name="Ann Example", email="ann@example.org")
    assert PersonEntry(name=SEALED, email=SEALED).email == SEALED
    with pytest.raises(ValidationError, match="should match the pattern"):
        PersonEntry(name="Ann", email="not an address")
    with pytest.raises(ValidationError, match="may not begin with 'sealed:'"):
        PersonEntry(name="sealed:Ann", email="ann@example.org")
    schema = json.loads(generate_schemas()["notify.person_changed.v3.json"])["$defs"]["PersonEntry"]["properties"]
    assert {name for name, field in schema.items() if field.get("x-personal")} == {"name", "email"}
    assert map_personal(entry, str.upper).model_dump(include={"name", "email", "language"}) == {
        "name": "ANN EXAMPLE",
        "email": "ANN@EXAMPLE.ORG",
        "language": "en",
    }


NOTIFIED = {"producer": "notify", "correlation_id": "c", "occurred_at": T0}


def test_notify_records_from_before_sealing_read_as_the_current_version():
    person = PersonChanged(
        event_id="p-1", person_id="ann", data=PersonEntry(name="Ann", email="ann@example.org"), changed_by="ops",
        **NOTIFIED,
    )  # fmt: skip
    mail = MailMessage(message_id="<m@x>", to="ann@example.org", to_name="Ann", subject="s", text="t", html="h")
    scheduled = DeliveryScheduled(
        delivery_id="d-1", occurred_at=T0, channel=DeliveryChannel.MAIL, target="ann", ticket_id="t-1",
        source_event_id="e-1", source_event_type="ticket.created", content=mail,
    )  # fmt: skip
    for current, decode in ((person, decode_notify_config_change), (scheduled, decode_delivery_record)):
        old = json.loads(current.model_dump_json())
        old["schema_version"] = 2
        assert decode(json.dumps(old).encode()) == current
    sealed = scheduled.model_copy(update={"content": SealedMail(sealed=SEALED)})
    assert decode_delivery_record(sealed.model_dump_json().encode()).content == SealedMail(sealed=SEALED)
