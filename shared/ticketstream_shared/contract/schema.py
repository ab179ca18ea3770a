"""The published contract, generated from the models: a JSON Schema per event type and version, and an AsyncAPI
document of every topic. The checked-in copies live in shared/schemas/.

`python -m ticketstream_shared.contract.schema DIR` rewrites them; a test fails when they drift from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .assignment import ROSTER_EVENT_TYPES
from .codec import EVENT_TYPES_BY_TOPIC
from .erasures import ERASURE_EVENT_TYPES
from .knowledge import KNOWLEDGE_EVENT_TYPES
from .legacy import LEGACY_EVENT_TYPES
from .notify import DELIVERY_RECORD_TYPES, NOTIFY_CONFIG_EVENT_TYPES
from .requests import InboundRequest
from .sla import SLA_CONFIG_EVENT_TYPES
from .topics import (
    ASSIGNMENT_BY_TEAM,
    KNOWLEDGE_ARTICLES,
    NOTIFY_CONFIG,
    NOTIFY_DELIVERIES,
    PRIVACY_ERASURES,
    SLA_CONFIG,
    TICKETS_INBOUND,
    dead_letter_topic,
)

CONTRACT_VERSION = "1.0.0"
BASE_ID = "https://ticketstream.dev/schemas"

WRITERS = {
    "tickets.events": "intake",
    "sla.events": "sla",
    "assignment.events": "assignment",
    SLA_CONFIG: "sla",
    KNOWLEDGE_ARTICLES: "intake",
    ASSIGNMENT_BY_TEAM: "assignment",
    NOTIFY_CONFIG: "notify",
    NOTIFY_DELIVERIES: "notify",
    PRIVACY_ERASURES: "intake",
}
#: Configuration logs: not keyed by ticket, each with its own envelope; published so operators and auditors can
#: read them, written and read by their service.
CONFIGURATION_BY_TOPIC: dict[str, tuple[type[BaseModel], ...]] = {
    SLA_CONFIG: SLA_CONFIG_EVENT_TYPES,
    KNOWLEDGE_ARTICLES: KNOWLEDGE_EVENT_TYPES,
    ASSIGNMENT_BY_TEAM: ROSTER_EVENT_TYPES,
    NOTIFY_CONFIG: NOTIFY_CONFIG_EVENT_TYPES,
    NOTIFY_DELIVERIES: DELIVERY_RECORD_TYPES,
    PRIVACY_ERASURES: ERASURE_EVENT_TYPES,
}
CONFIGURATION_NOTES = {
    SLA_CONFIG: "Versioned calendars, policies and client agreements, each with effective_at; key = '<kind>/<id>'.",
    KNOWLEDGE_ARTICLES: "Every version of every knowledge article (PUT /v1/knowledge/articles/{id}); key = the "
    "article id.",
    ASSIGNMENT_BY_TEAM: "Roster and routing changes, keyed by team (rules by 'category:<name>'); it also carries "
    "assignment's own re-keyed ticket work, which is not part of this contract.",
    NOTIFY_CONFIG: "Webhooks (their secrets sealed, never in plain text) and the people mail goes to; key = "
    "'<kind>/<id>'.",
    NOTIFY_DELIVERIES: "Every webhook delivery and mail with each attempt's outcome: the delivery log behind "
    "GET /v1/notify/webhooks/{id}/deliveries; key = '<channel>:<target>', kept 7 days.",
    PRIVACY_ERASURES: "Every person erased (POST /v1/privacy/subjects/{id}/erase), with none of their words; key = "
    "the person's id, kept forever.",
}


def _event_name(model: type[BaseModel]) -> tuple[str, int]:
    return model.model_fields["event_type"].default, model.model_fields["schema_version"].default


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def generate_schemas() -> dict[str, str]:
    """File name -> text: one JSON Schema per event type and schema version, and asyncapi.json."""
    files = {}
    for models in (*EVENT_TYPES_BY_TOPIC.values(), *CONFIGURATION_BY_TOPIC.values(), LEGACY_EVENT_TYPES):
        for model in models:
            event_type, version = _event_name(model)
            schema = model.model_json_schema(mode="serialization")
            schema["$id"] = f"{BASE_ID}/{event_type}.v{version}.json"
            files[f"{event_type}.v{version}.json"] = _json(schema)
    files["asyncapi.json"] = _json(asyncapi())
    return files


def asyncapi() -> dict[str, Any]:
    """AsyncAPI 3.0: every topic, what travels on it, and who writes it."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    consumed = [*EVENT_TYPES_BY_TOPIC, TICKETS_INBOUND, NOTIFY_DELIVERIES]
    for topic, models in (*EVENT_TYPES_BY_TOPIC.items(), *CONFIGURATION_BY_TOPIC.items()):
        names = {}
        for model in models:
            event_type, version = _event_name(model)
            messages[event_type] = {
                "name": event_type,
                "title": model.__name__,
                "summary": (model.__doc__ or "").strip().split("\n")[0] or event_type,
                "contentType": "application/json",
                "payload": {"$ref": f"{BASE_ID}/{event_type}.v{version}.json"},
                "correlationId": {"location": "$message.payload#/correlation_id"},
            }
            names[event_type] = {"$ref": f"#/components/messages/{event_type}"}
        keyed = CONFIGURATION_NOTES.get(topic, "Key = ticket_id; one partition keeps a ticket's order.")
        channels[topic] = {
            "address": topic,
            "description": f"Written by {WRITERS[topic]} only. {keyed}",
            "messages": names,
        }
        operations[f"write {topic}"] = {"action": "send", "channel": {"$ref": f"#/channels/{topic}"}}
    messages["inbound.request"] = {
        "name": "inbound.request",
        "title": "InboundRequest",
        "summary": "A request of another system: create a ticket, comment, change status, update, log time.",
        "contentType": "application/json",
        "payload": InboundRequest.model_json_schema(),
    }
    channels[TICKETS_INBOUND] = {
        "address": TICKETS_INBOUND,
        "description": "Requests from other systems; intake carries them out once per request_id.",
        "messages": {"inbound.request": {"$ref": "#/components/messages/inbound.request"}},
    }
    operations[f"read {TICKETS_INBOUND}"] = {"action": "receive", "channel": {"$ref": f"#/channels/{TICKETS_INBOUND}"}}
    messages["dead.letter"] = {
        "name": "dead.letter",
        "title": "Dead letter",
        "summary": "A message its consumer could not carry out: the original bytes, the reason in the headers.",
        "headers": {
            "type": "object",
            "properties": {
                name: {"type": "string"}
                for name in ("dlq.reason", "dlq.topic", "dlq.partition", "dlq.offset", "dlq.consumer")
            },
        },
        "payload": {"description": "The original message, byte for byte."},
    }
    for topic in consumed:
        dlq = dead_letter_topic(topic)
        channels[dlq] = {
            "address": dlq,
            "description": f"What consumers of {topic} could not read or carry out.",
            "messages": {"dead.letter": {"$ref": "#/components/messages/dead.letter"}},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ticketstream events",
            "version": CONTRACT_VERSION,
            "description": "The ordered, replayable event stream of ticketstream: the integration contract.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def write_schemas(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.json"):
        stale.unlink()
    for name, text in generate_schemas().items():
        (directory / name).write_text(text)


if __name__ == "__main__":
    write_schemas(Path(sys.argv[1]))
