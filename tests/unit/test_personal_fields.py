"""Personal fields in the contract (contract/personal.py): plain text within its limits or a sealed value, marked in
the JSON Schemas, found by map_personal wherever they nest, and events from before sealing read as the current
version."""

import json
import uuid

import pytest
from pydantic import ValidationError

from tests.builders import T0, a_ticket_created
from ticketstream_shared.contract import TicketUpdated, decode_ticket_event, encode
from ticketstream_shared.contract.events import TICKET_EVENT_TYPES
from ticketstream_shared.contract.legacy import SEALABLE_EVENT_TYPES
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
    }
    assert set(SEALABLE_EVENT_TYPES) < set(TICKET_EVENT_TYPES)


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
