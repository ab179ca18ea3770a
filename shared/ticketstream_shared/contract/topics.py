"""Topic names and their settings: the one place every service and the launcher read them from."""

from __future__ import annotations

from dataclasses import dataclass, field

TICKETS_EVENTS = "tickets.events"
TICKETS_INBOUND = "tickets.inbound"
SLA_EVENTS = "sla.events"
ASSIGNMENT_EVENTS = "assignment.events"
#: The one service that writes each event topic (product.md), as its events name it in `producer`.
WRITER_OF = {TICKETS_EVENTS: "intake", SLA_EVENTS: "sla", ASSIGNMENT_EVENTS: "assignment"}
#: Intake's own plumbing, not a contract for other systems: commands carried to the replica that owns the
#: ticket's partition, and the outcomes carried back.
INTAKE_COMMANDS = "intake.commands"
INTAKE_REPLIES = "intake.replies"
#: Intake's changelog: each ticket as its local store holds it (its events, compacted to the latest record), and
#: each request key still bound, keyed and partitioned as tickets.events; a new replica restores from it.
INTAKE_TICKETS = "intake.tickets"
#: The assignment service's team log, keyed by team: roster changes and the ticket work re-keyed from
#: tickets.events and sla.events, so one partition (one owner) holds everything that decides for a team.
ASSIGNMENT_BY_TEAM = "assignment.by_team"
TEAM_PARTITIONS = 6
#: SLA calendars, policies and client agreements: every change, in one partition so all readers agree on versions.
SLA_CONFIG = "sla.config"
#: Knowledge articles, every version (intake writes them, one partition, key = the article id).
KNOWLEDGE_ARTICLES = "knowledge.articles"
#: The sla service's changelog: each ticket's clocks as they stand (compacted, keyed like tickets.events), so a
#: worker given a partition restores its clocks instead of replaying the partition's whole history.
SLA_CLOCKS = "sla.clocks"
#: notify's webhooks and people (one partition, every change kept), its deliveries with every attempt (keyed by
#: target; kept a week, beyond the longest retry budget), and the little it knows of each open ticket (compacted).
NOTIFY_CONFIG = "notify.config"
NOTIFY_DELIVERIES = "notify.deliveries"
NOTIFY_TICKETS = "notify.tickets"
DELIVERY_PARTITIONS = 6
DELIVERIES_RETENTION_MS = 7 * 24 * 3600 * 1000
#: People's data keys, wrapped by the master key (ticketstream_shared/privacy.py): one partition, key = the key id,
#: compacted, so that a tombstone (a person erased) removes the key itself: within about a day (a segment closes
#: within an hour and is cleaned soon after; the tombstone itself is kept a day, so every replica reads it).
PRIVACY_KEYS = "privacy.keys"
PRIVACY_KEYS_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(3600 * 1000),
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": str(24 * 3600 * 1000),
}
#: Who was erased, when, by whom and how much (contract/erasures.py): the trail of erasures, with no personal words.
PRIVACY_ERASURES = "privacy.erasures"

#: Partitions of the ticket-keyed topics. They must agree, so that a ticket's events, commands and
#: downstream decisions share one partition number everywhere.
TICKET_PARTITIONS = 6


def dead_letter_topic(topic: str) -> str:
    """Where unreadable messages of `topic` go, with the reason and the original bytes."""
    return f"{topic}.dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
_DLQ = {"retention.ms": str(30 * 24 * 3600 * 1000)}

#: Every topic the system uses. Created explicitly; the broker never auto-creates topics.
TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(TICKETS_EVENTS, TICKET_PARTITIONS, _FOREVER),
    # Other systems' requests in their own words, plain: its retention is how long an erased person's words stay.
    TopicSpec(TICKETS_INBOUND, TICKET_PARTITIONS, {"retention.ms": str(7 * 24 * 3600 * 1000)}),
    TopicSpec(SLA_EVENTS, TICKET_PARTITIONS, _FOREVER),
    TopicSpec(ASSIGNMENT_EVENTS, TICKET_PARTITIONS, _FOREVER),
    TopicSpec(INTAKE_COMMANDS, TICKET_PARTITIONS, {"retention.ms": str(24 * 3600 * 1000)}),
    TopicSpec(INTAKE_REPLIES, TICKET_PARTITIONS, {"retention.ms": str(3600 * 1000)}),
    TopicSpec(INTAKE_TICKETS, TICKET_PARTITIONS, {"cleanup.policy": "compact"}),
    TopicSpec(ASSIGNMENT_BY_TEAM, TEAM_PARTITIONS, _FOREVER),
    TopicSpec(SLA_CONFIG, 1, _FOREVER),
    TopicSpec(KNOWLEDGE_ARTICLES, 1, _FOREVER),
    TopicSpec(SLA_CLOCKS, TICKET_PARTITIONS, {"cleanup.policy": "compact"}),
    TopicSpec(NOTIFY_CONFIG, 1, _FOREVER),
    TopicSpec(NOTIFY_DELIVERIES, DELIVERY_PARTITIONS, {"retention.ms": str(DELIVERIES_RETENTION_MS)}),
    TopicSpec(NOTIFY_TICKETS, TICKET_PARTITIONS, {"cleanup.policy": "compact"}),
    TopicSpec(PRIVACY_KEYS, 1, PRIVACY_KEYS_CONFIG),
    TopicSpec(PRIVACY_ERASURES, 1, _FOREVER),
)
#: Every topic is consumed by some service, so every topic has a dead-letter topic beside it.
TOPICS += tuple(TopicSpec(dead_letter_topic(spec.name), 1, _DLQ) for spec in TOPICS)
