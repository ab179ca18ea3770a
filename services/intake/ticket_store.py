"""Intake's tickets on disk, in the local store: every ticket's events, a summary of what tickets are listed by, the
indexes the list endpoint reads, who each ticket is assigned to, and the request keys still bound.

Keys (NUL separates parts; identifiers never contain it):
- `t|<ticket>\\0<version>`: one event of the ticket as the log holds it (the version zero-padded, so that a
  ticket's events are read in order)
- `s|<ticket>`: its summary, JSON: client, requester, status, priority, created, version
- `w|<ticket>`: who it is assigned to (from assignment.events)
- `i|<index>\\0<value>\\0<created>\\0<ticket>`: one entry per index a ticket is in, ordered by creation
- `n|<index>\\0<value>`: how many entries that index value has, so a listing reads the smallest index it may
- `k|<caller>\\0<key>`: a request key's first use (idempotency.py)

The changelog holds a record per request key, and per ticket a record for each run of its events
(`c|<ticket>\\0<first version of the run>`): the ticket's summary as the run was last written, then the run's events.
A run ends before `EVENTS_PER_RECORD` events or `RECORD_BYTES` of them, whichever comes first. A new machine rebuilds
every key above from the changelog but the assignees, which it reads from assignment.events again. A typical ticket
is one record; a busy one is several of bounded size, where a single record of its whole history once grew past the
1 MB Kafka accepts (at about 2,000 events), and was written whole for each.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, NamedTuple

from prometheus_client import Counter

from ticketstream_shared.contract import (
    InvalidEvent,
    Priority,
    TicketCreated,
    TicketStatus,
    TicketStatusChanged,
    TicketUpdated,
    decode_event,
)
from ticketstream_shared.contract.sla import SlaEventUnion, SlaMetric
from ticketstream_shared.contract.topics import INTAKE_TICKETS, TICKETS_EVENTS
from ticketstream_shared.privacy import KeyNotYetRead
from ticketstream_shared.runtime.changelog import Changelog
from ticketstream_shared.runtime.data_keys import PLAIN, PersonalData
from ticketstream_shared.runtime.store import Changes, LocalStore

from .domain import NotReady, Ticket, TicketUnreadable, fold

log = logging.getLogger(__name__)

VERSIONS_CONTESTED = Counter(
    "ticketstream_intake_versions_contested_total",
    "Events read at a version of a ticket that an earlier event in the log holds: intake keeps the earlier and "
    "ignores this one (a replica that decided on after the group took its partition away)",
)

_EVENTS, _SUMMARY, _ASSIGNEE, _INDEX, _COUNT, _RUN = b"t|", b"s|", b"w|", b"i|", b"n|", b"c|"
#: Where each of a ticket's SLA clocks stands, by metric (from sla.events, which only sla writes).
_CLOCK = b"p|"
#: Request keys' records are kept as idempotency.RequestKeys writes them, under this prefix, and changelogged as such.
REQUEST_KEYS = b"k|"
#: The store's changelog: records of runs of a ticket's events, and of request keys, partitioned as tickets.events.
CHANGELOG = Changelog(INTAKE_TICKETS, TICKETS_EVENTS)
#: What the store's keys mean: a store written in another layout is emptied and restored from the changelog.
LAYOUT = "tickets/2: a key per event"
#: A changelog record's run of events: most tickets in one, and never near the 1 MB Kafka accepts in one record (an
#: event of the largest description or comment is about 120 KB).
EVENTS_PER_RECORD = 64
RECORD_BYTES = 256 * 1024
_SEP = b"\x00"
#: Events a full scan reads between two yields to the event loop (a few milliseconds of work).
SCAN_STEP = 5_000
_DIGITS = 10
#: Index values whose keys are remembered (see `_index_keys`): a few MB at most.
INDEX_VALUES_REMEMBERED = 16_384
#: The fields of a summary the indexes are made of: most events (a worklog, a comment) change none of them.
_INDEXED = ("client", "requester", "status", "priority", "created")
_CREATED, _STATUS_CHANGED, _UPDATED = (
    event.model_fields["event_type"].default for event in (TicketCreated, TicketStatusChanged, TicketUpdated)
)
#: One encoder for every summary (`json.dumps` with separators builds a new one per call: a third of its cost).
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def _encoded_summary(summary: dict[str, str]) -> bytes:
    return _COMPACT.encode(summary).encode()


@dataclass(frozen=True)
class Filters:
    """What a listing asks for; None matches anything."""

    client_id: str | None = None
    status: TicketStatus | None = None
    priority: Priority | None = None
    requester_id: str | None = None
    assignee_id: str | None = None

    def match(self, summary: dict[str, str], assignee: str | None) -> bool:
        return (
            (self.client_id is None or summary["client"] == self.client_id)
            and (self.status is None or summary["status"] == self.status.value)
            and (self.priority is None or summary["priority"] == self.priority.value)
            and (self.requester_id is None or summary["requester"] == self.requester_id)
            and (self.assignee_id is None or assignee == self.assignee_id)
        )


def _index_entries(ticket_id: str, summary: dict[str, str], assignee: str | None) -> dict[bytes, bytes]:
    """The index keys of a ticket, each with the key counting its index value's entries: all tickets, and by each
    field a listing filters on (client and status together, the desk's most common question, too)."""
    values = {
        "all": "",
        "client": summary["client"],
        "status": summary["status"],
        "priority": summary["priority"],
        "requester": summary["requester"],
        "client_status": f"{summary['client']}/{summary['status']}",
    }
    if assignee is not None:
        values["assignee"] = assignee
    tail = summary["created"].encode() + _SEP + ticket_id.encode()
    keys = [_index_keys(name, value) for name, value in values.items()]
    return {prefix + tail: counter for prefix, counter in keys}


@functools.lru_cache(maxsize=INDEX_VALUES_REMEMBERED)
def _index_keys(name: str, value: str) -> tuple[bytes, bytes]:
    """An index value's prefix and the key counting its entries: the same few clients, statuses and people come
    again and again."""
    prefix = _index_prefix(name, value)
    return prefix, _count_key(prefix)


def _events_prefix(ticket: bytes) -> bytes:
    return _EVENTS + ticket + _SEP


def _event_key(ticket: bytes, version: int) -> bytes:
    return _events_prefix(ticket) + _digits(version)


def _run_key(ticket: bytes, first: bytes) -> bytes:
    """The changelog key of the run of a ticket's events from version `first` (its digits)."""
    return _RUN + ticket + _SEP + first


def _ends_run(first: int, size: int, version: int, line: bytes) -> bool:
    """Whether the event of `version` begins a run after the one from `first` of `size` bytes so far. One rule,
    whether applied event by event or over a ticket's stored events: both find the same runs."""
    return version - first >= EVENTS_PER_RECORD or size + len(line) > RECORD_BYTES


def _digits(number: int) -> bytes:
    return str(number).zfill(_DIGITS).encode()


def _index_prefix(name: str, value: str) -> bytes:
    return _INDEX + name.encode() + _SEP + value.encode() + _SEP


def _count_key(prefix: bytes) -> bytes:
    """The key counting the entries of an index value, from its prefix."""
    return _COUNT + prefix[len(_INDEX) : -len(_SEP)]


def _sortable(moment: datetime) -> str:
    """A creation time whose text sorts as the time does (isoformat drops zero microseconds)."""
    return moment.strftime("%Y%m%dT%H%M%S.%f%z")


class ClockNote(NamedTuple):
    """Where one SLA clock of a ticket stands, as its last event on sla.events left it."""

    ticket_id: str
    metric: SlaMetric
    #: Running (or warned), breached, paused, met or stopped: the last event's type, without its prefix.
    state: str
    deadline: datetime
    #: Whether it ran past its target (a breach, or a clock met late, or re-timed to a target already passed).
    late: bool

    @classmethod
    def of(cls, event: SlaEventUnion) -> ClockNote:
        state = _CLOCK_STATES[event.event_type]
        late = event.data.remaining_business_seconds < 0 or state == "breached"
        return cls(event.ticket_id, event.data.metric, state, event.data.deadline, late)

    def to_json(self) -> bytes:
        return json.dumps({**self._asdict(), "deadline": self.deadline.isoformat()}).encode()

    @classmethod
    def from_json(cls, value: bytes) -> ClockNote:
        note = json.loads(value)
        return cls(note["ticket_id"], SlaMetric(note["metric"]), note["state"], _moment(note["deadline"]), note["late"])


#: What each event of a clock leaves it as.
_CLOCK_STATES = {
    "sla.clock_started": "running",
    "sla.resumed": "running",
    "sla.warning": "running",
    "sla.retargeted": "running",
    "sla.breached": "breached",
    "sla.paused": "paused",
    "sla.met": "met",
    "sla.clock_stopped": "stopped",
}


class Logged(NamedTuple):
    """What the ledger files an event of the log by, read once from its JSON as written (read_logged): nothing of
    the event is read after, so a field missing or mistyped is found before anything is written."""

    ticket_id: str
    version: int
    #: The fields of the ticket's summary the event sets: a creation all of them (and only a creation), most events
    #: none.
    sets: dict[str, str] | None
    creates: bool
    #: The request it was made under, if under a key: (caller, key, what it asked for, when).
    request: tuple[str, str, dict[str, Any], datetime] | None

    @classmethod
    def of(cls, event: dict[str, Any]) -> Logged:
        """KeyError, TypeError, ValueError or AttributeError for a field missing or not as intake writes it."""
        kind, data, version = event["event_type"], event["data"], event["aggregate_version"]
        if type(version) is not int:
            raise TypeError(f"aggregate_version {version!r} is not an integer")
        sets: dict[str, str] | None = None
        created: datetime | None = None
        if kind == _CREATED:
            created = _moment(event["occurred_at"])
            sets = {
                "client": _text(event["client_id"]),
                "requester": _text(data["requester_id"]),
                "status": _one_of(_STATUSES, data["status"]),
                "priority": _one_of(_PRIORITIES, data["priority"]),
                "created": _sortable(created),
            }
        elif kind == _STATUS_CHANGED:
            sets = {"status": _one_of(_STATUSES, data["to_status"])}
        elif kind == _UPDATED and (priority := data["changes"].get("priority")) is not None:
            sets = {"priority": _one_of(_PRIORITIES, priority)}
        request, key = event.get("request"), event.get("request_id")
        made_under = None
        if request is not None and key is not None:
            made_under = (_text(request["caller"]), _text(key), request, created or _moment(event["occurred_at"]))
        return cls(_text(event["ticket_id"]), version, sets, kind == _CREATED, made_under)


def _text(value: object) -> str:
    if type(value) is not str:
        raise TypeError(f"{value!r} is not a string")
    return value


#: What a listing's indexes may hold: a value outside them is not as intake writes it.
_STATUSES, _PRIORITIES = frozenset(TicketStatus), frozenset(Priority)


def _one_of(values: frozenset[str], value: object) -> str:
    if value not in values:
        raise ValueError(f"{value!r} is none of {sorted(values)}")
    return value


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _contested(ticket_id: str, version: int, held: bytes, line: bytes) -> None:
    """Another event than the one held at `version`: intake keeps the log's first, so the later one's change is lost
    to the ticket (its decider tells its caller to retry: ledger._taken_in; readers of the log by event id, as
    reporting, may count both). Said: two replicas decided for one ticket at once."""
    kept, ignored = json.loads(held)["event_id"], json.loads(line)["event_id"]
    if kept != ignored:
        VERSIONS_CONTESTED.inc()
        log.error(
            "two events at one version of a ticket: the first in the log stands, the other is ignored",
            extra={"ticket_id": ticket_id, "version": version, "kept": kept, "ignored": ignored},
        )


def _summary_after(event: Logged, summary: dict[str, str] | None) -> dict[str, str] | None:
    if event.creates:
        return {**event.sets, "version": event.version}  # type: ignore[dict-item]
    if summary is None:
        return None
    return {**summary, **(event.sets or {}), "version": event.version}  # type: ignore[dict-item]


class TicketStore:
    def __init__(self, store: LocalStore, personal: PersonalData = PLAIN) -> None:
        """`personal`: opens the personal fields of the events as they are loaded (stored as the log holds them)."""
        self.store = store
        self._personal = personal

    # --- reading --------------------------------------------------------------------------------------------------

    def load(self, ticket_id: str) -> Ticket | None:
        """The ticket folded from its stored events. A ticket the store does not hold (every new one is asked for)
        is told by a point read of its summary, held with its events: a scan finding nothing costs ten times as
        much."""
        key = ticket_id.encode()
        if self.store.get(_SUMMARY + key) is None:
            return None
        prefix = _events_prefix(key)
        try:
            events = [
                self._personal.open_fields(decode_event(TICKETS_EVENTS, line))
                for _, line in self.store.scan(prefix, prefix)
            ]
        except KeyNotYetRead:
            raise NotReady("intake is still reading a data key of this ticket's people; retry shortly") from None
        except InvalidEvent as error:
            log.error("ticket %s: a stored event is unreadable: %s", ticket_id, error.reason)
            raise TicketUnreadable(
                f"ticket {ticket_id}: its history holds an event this version of intake cannot read ({error.reason})"
            ) from None
        return fold(None, events) if events else None  # type: ignore[arg-type]

    def event_id_at(self, ticket_id: str, version: int) -> str | None:
        """The id of the event the ticket holds at `version`: the log's first there."""
        line = self.store.get(_event_key(ticket_id.encode(), version))
        return None if line is None else json.loads(line)["event_id"]

    def written_by(self, person: str) -> Iterator[list[str]]:
        """The tickets with a comment or worklog of `person`'s, each once, by a scan of every event held (no index:
        an export is rare, and an index would cost every write). In steps of SCAN_STEP events, each the tickets
        found in it (often none), so that a caller lets others run between them."""
        needles = tuple(b'"%s":%s' % (field, json.dumps(person).encode()) for field in (b"author_id", b"technician_id"))
        found: list[str] = []
        last = None
        for scanned, (key, line) in enumerate(self.store.scan(_EVENTS, _EVENTS), 1):
            if any(needle in line for needle in needles):
                ticket = key[len(_EVENTS) :].rpartition(_SEP)[0].decode()
                if ticket != last:
                    found.append(ticket)
                    last = ticket
            if scanned % SCAN_STEP == 0:
                yield found
                found = []
        yield found

    def requested_by(self, requester_id: str) -> int:
        """How many tickets `requester_id` opened (or had opened for them)."""
        return self._entries(_index_prefix("requester", requester_id))

    def version(self, ticket_id: str) -> int:
        summary = self._summary(ticket_id)
        return int(summary["version"]) if summary else 0

    def assignee(self, ticket_id: str) -> str | None:
        raw = self.store.get(_ASSIGNEE + ticket_id.encode())
        return raw.decode() if raw is not None else None

    def find(
        self, filters: Filters, after: tuple[datetime, str] | None, limit: int, *, newest_first: bool = False
    ) -> list[str]:
        """Ids of up to `limit` tickets matching `filters`, oldest first after the cursor (created_at, id), or the
        newest first."""
        return [ticket_id for _, ticket_id in islice(self.matching(filters, after, newest_first=newest_first), limit)]

    def matching(
        self, filters: Filters, after: tuple[datetime, str] | None = None, *, newest_first: bool = False
    ) -> Iterator[tuple[str, str]]:
        """(creation time, as text that sorts as the time does; id) of each ticket matching `filters`, oldest first
        after the cursor, or the newest first. Reads the narrowest index the filters allow and checks the rest on
        each candidate's summary."""
        prefix = min(self._indexes_for(filters), key=self._entries)
        start = prefix if after is None else prefix + _sortable(after[0]).encode() + _SEP + after[1].encode() + b"\x01"
        if newest_first:  # from after the last key of the index value: no key of ours holds a 0xff byte (UTF-8)
            start = prefix + b"\xff"
        for key, _ in self.store.scan(start, prefix, backwards=newest_first):
            created, ticket_id = key[len(prefix) :].decode().split(_SEP.decode())
            summary = self._summary(ticket_id)
            if summary is not None and filters.match(summary, self.assignee(ticket_id)):
                yield created, ticket_id

    @staticmethod
    def _indexes_for(filters: Filters) -> list[bytes]:
        """The index values a listing with `filters` may read: each holds every ticket the filters match."""
        indexes = [_index_prefix("all", "")]
        for name, value in (
            ("requester", filters.requester_id),
            ("assignee", filters.assignee_id),
            ("client", filters.client_id),
            ("status", filters.status and filters.status.value),
            ("priority", filters.priority and filters.priority.value),
        ):
            if value is not None:
                indexes.append(_index_prefix(name, value))
        if filters.client_id is not None and filters.status is not None:
            indexes.append(_index_prefix("client_status", f"{filters.client_id}/{filters.status.value}"))
        return indexes

    def _entries(self, prefix: bytes) -> int:
        raw = self.store.get(_count_key(prefix))
        return int(raw) if raw is not None else 0

    def _summary(self, ticket_id: str, within: Changes | None = None) -> dict[str, str] | None:
        """The ticket's summary, as `within` will leave it if given."""
        key = _SUMMARY + ticket_id.encode()
        if within is not None and (held := within.unencoded(key)) is not None:
            return held  # type: ignore[return-value]
        raw = self.store.get(key, within)
        return json.loads(raw) if raw is not None else None

    # --- writing --------------------------------------------------------------------------------------------------

    def apply(self, changes: Changes, event: Logged, raw: bytes) -> set[bytes]:
        """Add an event read from the log (`raw`, and what the ledger read of it) to `changes`. Returns the keys whose
        changelog records it changed: none if the store holds the event already."""
        ticket_id, version = event.ticket_id, event.version
        key = ticket_id.encode()
        event_key = _event_key(key, version)
        line = raw.replace(b"\n", b" ")  # one line per event: in JSON a newline can only be space between values
        summary = self._summary(ticket_id, changes)
        known = int(summary["version"]) if summary else 0
        if version <= known:
            if (held := self.store.get(event_key, changes)) is not None:
                if held != line:
                    _contested(ticket_id, version, held, line)
                return set()
            # The summary came back from a changelog whose writer stopped before this event's record: the log
            # fills the gap, and the summary, already past it, stays.
            changes.put(event_key, line)
            return {key}  # which run it is in takes reading the ticket's events: the writer writes them all
        if version != known + 1:
            log.error("version gap in the ticket log", extra={"ticket_id": ticket_id, "known": known, "got": version})
        after = _summary_after(event, summary)
        if after is None:
            return set()  # an event of a ticket whose creation is not in the log: nothing to fold it into
        first, size = int(after.get("run", 0)), int(after.get("run_bytes", 0))
        if not first or _ends_run(first, size, version, line):
            first, size = version, 0
        after |= {"run": first, "run_bytes": size + len(line)}  # type: ignore[dict-item]
        changes.put(event_key, line)
        self._put_summary(changes, ticket_id, summary, after)
        return {_run_key(key, _digits(first))}

    def note_clock(self, changes: Changes, clock: ClockNote) -> None:
        key = _CLOCK + clock.ticket_id.encode() + _SEP + clock.metric.encode()
        changes.put(key, clock.to_json())

    def clocks(self, ticket_id: str) -> list[ClockNote]:
        """Where the ticket's SLA clocks stand, as far as sla.events has been read."""
        prefix = _CLOCK + ticket_id.encode() + _SEP
        return [ClockNote.from_json(value) for _, value in self.store.scan(prefix, prefix)]

    def assign(self, changes: Changes, ticket_id: str, technician_id: str) -> None:
        summary = self._summary(ticket_id, changes)
        before = self.store.get(_ASSIGNEE + ticket_id.encode(), changes)
        if summary is not None:
            old = _index_entries(ticket_id, summary, None if before is None else before.decode())
            self._reindex(changes, old, _index_entries(ticket_id, summary, technician_id))
        changes.put(_ASSIGNEE + ticket_id.encode(), technician_id.encode())

    def _put_summary(
        self,
        changes: Changes,
        ticket_id: str,
        before: dict[str, str] | None,
        after: dict[str, str],
        written: bytes | None = None,
    ) -> None:
        """`written`: `after` as this store writes it, when at hand (a changelog record holds it so)."""
        if before is None or any(before[field] != after[field] for field in _INDEXED):
            assignee = self.assignee(ticket_id)
            old = _index_entries(ticket_id, before, assignee) if before else {}
            self._reindex(changes, old, _index_entries(ticket_id, after, assignee))
        if written is not None:
            changes.put(_SUMMARY + ticket_id.encode(), written)
        else:  # the ticket's next events in this write read it back as it is
            changes.put_unencoded(_SUMMARY + ticket_id.encode(), after, _encoded_summary)

    def _reindex(self, changes: Changes, old: dict[bytes, bytes], new: dict[bytes, bytes]) -> None:
        """Index entries and their counts from `old` to `new` (each entry with its counter)."""
        for entry in old.keys() - new.keys():
            changes.delete(entry)
            changes.count(old[entry], -1)
        for entry in new.keys() - old.keys():
            changes.put(entry, b"")
            changes.count(new[entry], 1)

    # --- the changelog --------------------------------------------------------------------------------------------

    def records_of(self, key: bytes) -> Iterable[tuple[bytes, bytes]]:
        """The changelog records a changed key stands for: a request key's or a run's; or, for a ticket id (what a
        writer taking a partition over marks), every run of the ticket."""
        if key.startswith(REQUEST_KEYS):
            value = self.store.get(key)
            return [] if value is None else [(key, value)]
        ticket, _, first = key.removeprefix(_RUN).partition(_SEP)
        summary = self.store.get(_SUMMARY + ticket)
        if summary is None:
            return []
        # Each event line is written after its version's digits, so that a restore puts it under its key unparsed.
        prefix = _events_prefix(ticket)
        runs: list[tuple[bytes, list[bytes]]] = []
        start, size = 0, 0
        for event_key, line in self.store.scan(prefix + first, prefix):
            version = event_key[len(prefix) :]
            if not runs or _ends_run(start, size, int(version), line):
                if first and runs:
                    break  # the one run asked for is read
                runs.append((version, [summary]))
                start, size = int(version), 0
            runs[-1][1].append(version + line)
            size += len(line)
        return [(_run_key(ticket, begins), b"\n".join(lines)) for begins, lines in runs]

    def restore(self, changes: Changes, partition: int, key: bytes, record: bytes) -> None:
        """Put a changelog record into `changes`, in whatever order compaction left the records."""
        if key.startswith(REQUEST_KEYS):
            changes.put(key, record)
            return
        summary_line, *lines = record.split(b"\n")
        if key.startswith(_RUN):
            ticket = key[len(_RUN) :].partition(_SEP)[0]
            prefix = _events_prefix(ticket)
            for line in lines:  # an event never changes: the latest record of its run holds it as every other does
                changes.put(prefix + line[:_DIGITS], line[_DIGITS:])
        else:  # the earlier layout, kept by compaction until the ticket changes again: all its events in one record
            ticket = key
            for line in lines:
                changes.put(_event_key(ticket, json.loads(line)["aggregate_version"]), line)
        ticket_id, summary = ticket.decode(), json.loads(summary_line)
        before = self._summary(ticket_id, changes)
        if before is None or int(before["version"]) < int(summary["version"]):
            self._put_summary(changes, ticket_id, before, summary, summary_line)

    def ticket_ids(self) -> Iterator[str]:
        for key, _ in self.store.scan(_SUMMARY, _SUMMARY):
            yield key[len(_SUMMARY) :].decode()
