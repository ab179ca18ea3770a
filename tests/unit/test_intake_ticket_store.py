"""Intake's tickets in a real local store (RocksDB in a temporary directory): events kept as read, summaries and the
list endpoint's indexes kept up to date, changelog records that rebuild all of it (however busy a ticket), and
offsets written with the state they describe."""

import json
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.domain import AddComment, ChangeStatus, DomainError, UpdateTicket, decide, fold
from intake.ticket_store import (
    EVENTS_PER_RECORD,
    LAYOUT,
    RECORD_BYTES,
    ClockNote,
    Filters,
    Logged,
    TicketStore,
    _index_entries,
)
from tests.builders import T0, a_clock_event
from tests.unit.test_intake_domain import context, create, worklog
from ticketstream_shared.contract import Priority, TicketStatus, encode, read_logged
from ticketstream_shared.contract.sla import SlaMetric
from ticketstream_shared.contract.topics import TICKETS_EVENTS
from ticketstream_shared.runtime.store import Changes, LocalStore


@pytest.fixture
def tickets():
    store = LocalStore(None)
    yield TicketStore(store)
    store.close()


def fed(tickets, changes, event):
    """What following the log does with `event`: its JSON as written, and its bytes."""
    raw = encode(event)
    return tickets.apply(changes, Logged.of(read_logged(TICKETS_EVENTS, raw)), raw)


def events_of(*commands):
    ticket, events = None, []
    for command in commands:
        decided = decide(ticket, command, context())
        ticket = fold(ticket, decided)
        events += decided
    return events


def keep(tickets, events, **offsets):
    changes = Changes()
    applied = [fed(tickets, changes, event) for event in events]
    for partition, offset in offsets.items():
        changes.applied(TICKETS_EVENTS, int(partition.removeprefix("p")), offset)
    tickets.store.write(changes)
    return applied


def test_a_ticket_is_folded_from_its_stored_events_and_each_event_is_kept_once(tickets):
    events = events_of(create(), worklog(minutes=20), worklog(minutes=15))
    assert all(keep(tickets, events)), "each changed the changelog"
    assert keep(tickets, events) == [set(), set(), set()], "read again: already held"
    ticket = tickets.load("t-1")
    assert (ticket.version, ticket.worklog_minutes, len(ticket.history)) == (3, 35, 3)
    assert ticket == fold(None, events)
    assert tickets.load("t-2") is None and tickets.version("t-2") == 0


def test_offsets_are_written_with_the_state_they_describe(tickets):
    events = events_of(create(), worklog())
    changes = Changes()
    fed(tickets, changes, events[0])
    changes.applied(TICKETS_EVENTS, 3, 41)
    assert tickets.store.applied(TICKETS_EVENTS) == {} and tickets.load("t-1") is None, "nothing before the write"
    tickets.store.write(changes)
    assert tickets.store.applied(TICKETS_EVENTS) == {3: 41} and tickets.version("t-1") == 1


def listing(tickets, filters=None, after=None, limit=50):
    return tickets.find(filters or Filters(), after, limit)


def test_a_write_prepared_and_dropped_leaves_nothing_the_next_write_reads(tickets):
    created, logged = events_of(create(), worklog())
    dropped = Changes()
    assert fed(tickets, dropped, created), "the creation goes into the write being prepared"
    assert tickets.version("t-1") == 0, "not written"
    assert fed(tickets, Changes(), logged) == set(), "no creation held: nothing to fold it into"
    assert keep(tickets, [created, logged]) and tickets.version("t-1") == 2


def test_listing_filters_by_every_field_oldest_first_with_a_cursor_or_newest_first(tickets):
    for number, (client, priority) in enumerate([("acme", "P1"), ("globex", "P2"), ("acme", "P3"), ("acme", "P1")]):
        keep(tickets, events_of(create(ticket_id=f"t-{number}", client_id=client, priority=Priority(priority))))
    assert listing(tickets) == ["t-0", "t-1", "t-2", "t-3"]
    assert listing(tickets, Filters(client_id="acme")) == ["t-0", "t-2", "t-3"]
    assert listing(tickets, Filters(client_id="acme", priority=Priority.P1)) == ["t-0", "t-3"]
    assert listing(tickets, Filters(requester_id="bob")) == []
    first = tickets.load("t-0")
    assert listing(tickets, Filters(client_id="acme"), after=(first.created_at, first.ticket_id)) == ["t-2", "t-3"]
    assert listing(tickets, limit=2) == ["t-0", "t-1"]
    assert tickets.find(Filters(client_id="acme"), None, 2, newest_first=True) == ["t-3", "t-2"]
    assert tickets.find(Filters(client_id="globex"), None, 5, newest_first=True) == ["t-1"], "its index value only"


def test_each_clock_of_a_ticket_is_kept_as_its_last_event_left_it(tickets):
    due = T0 + timedelta(hours=4)
    changes = Changes()
    for kind, metric in [("sla.clock_started", SlaMetric.FIRST_RESPONSE), ("sla.clock_started", SlaMetric.RESOLUTION),
                         ("sla.met", SlaMetric.FIRST_RESPONSE), ("sla.paused", SlaMetric.RESOLUTION)]:  # fmt: skip
        tickets.note_clock(changes, ClockNote.of(a_clock_event(kind, "t-1", metric, due)))
    tickets.note_clock(changes, ClockNote.of(a_clock_event("sla.breached", "t-10", SlaMetric.RESOLUTION, due, -60)))
    tickets.store.write(changes)
    assert {clock.metric: (clock.state, clock.deadline, clock.late) for clock in tickets.clocks("t-1")} == {
        SlaMetric.FIRST_RESPONSE: ("met", due, False),
        SlaMetric.RESOLUTION: ("paused", due, False),
    }, "t-10's are its own"
    assert [(clock.state, clock.late) for clock in tickets.clocks("t-10")] == [("breached", True)]
    assert tickets.clocks("t-2") == []


def test_a_status_or_priority_change_moves_the_ticket_between_index_entries(tickets):
    keep(tickets, events_of(create(ticket_id="t-1"), create(ticket_id="t-2")))
    t1 = events_of(
        create(ticket_id="t-1"),
        ChangeStatus(ticket_id="t-1", status=TicketStatus.IN_PROGRESS),
        UpdateTicket(ticket_id="t-1", priority=Priority.P4),
    )
    keep(tickets, t1)
    keep(tickets, events_of(create(ticket_id="t-2")))
    assert listing(tickets, Filters(status=TicketStatus.NEW)) == ["t-2"]
    assert listing(tickets, Filters(client_id="acme", status=TicketStatus.IN_PROGRESS)) == ["t-1"]
    assert listing(tickets, Filters(priority=Priority.P4)) == ["t-1"]
    assert listing(tickets, Filters(priority=Priority.P2)) == ["t-2"]


def test_an_assignment_indexes_the_ticket_under_its_technician_whichever_comes_first(tickets):
    keep(tickets, events_of(create(ticket_id="t-1")))
    changes = Changes()
    tickets.assign(changes, "t-1", "tech-1")
    tickets.assign(changes, "t-2", "tech-2")  # read from assignment.events before the ticket's creation
    tickets.store.write(changes)
    keep(tickets, events_of(create(ticket_id="t-2")))
    assert listing(tickets, Filters(assignee_id="tech-1")) == ["t-1"]
    assert listing(tickets, Filters(assignee_id="tech-2")) == ["t-2"]
    changes = Changes()
    tickets.assign(changes, "t-1", "tech-2")
    tickets.store.write(changes)
    assert listing(tickets, Filters(assignee_id="tech-1")) == []
    assert listing(tickets, Filters(assignee_id="tech-2")) == ["t-1", "t-2"]
    assert tickets.assignee("t-1") == "tech-2"


def test_each_index_value_counts_its_entries_however_the_events_are_grouped_into_writes(tickets):
    t1 = events_of(
        create(ticket_id="t-1"),
        ChangeStatus(ticket_id="t-1", status=TicketStatus.IN_PROGRESS),
        UpdateTicket(ticket_id="t-1", priority=Priority.P4),
    )
    t2 = events_of(create(ticket_id="t-2", client_id="globex"), worklog(ticket_id="t-2"))
    t3 = events_of(
        create(ticket_id="t-3", requester_id="bob"), ChangeStatus(ticket_id="t-3", status=TicketStatus.IN_PROGRESS)
    )
    keep(tickets, t1[:1] + t2)
    keep(tickets, t3[:1] + t1[1:] + t3[1:])
    changes = Changes()
    for ticket_id, technician in (("t-1", "tech-1"), ("t-3", "tech-1"), ("t-1", "tech-2")):
        tickets.assign(changes, ticket_id, technician)
    tickets.store.write(changes)
    assert counted(tickets) == entries_per_value(tickets)
    assert (tickets.requested_by("alice"), tickets.requested_by("bob")) == (2, 1)
    assert counted(tickets)[b"n|status\x00in_progress"] == 2 and counted(tickets)[b"n|assignee\x00tech-1"] == 1


def test_writes_prepared_side_by_side_each_hold_their_own_tickets(tickets):
    (first,), (second,) = events_of(create(ticket_id="t-1")), events_of(create(ticket_id="t-2", client_id="globex"))
    one, two = Changes(), Changes()
    fed(tickets, one, first)
    fed(tickets, two, second)
    tickets.store.write(one)
    assert (tickets.version("t-1"), tickets.version("t-2"), tickets.requested_by("alice")) == (1, 0, 1)
    tickets.store.write(two)
    assert (tickets.version("t-2"), tickets.requested_by("alice")) == (1, 2)
    assert listing(tickets, Filters(client_id="globex")) == ["t-2"] and counted(tickets) == entries_per_value(tickets)


STEPS = st.one_of(
    st.tuples(st.just("status"), st.sampled_from(list(TicketStatus))),
    st.tuples(st.just("priority"), st.sampled_from(list(Priority))),
    st.tuples(st.just("worklog"), st.integers(1, 90)),
    st.tuples(st.just("assign"), st.sampled_from(["tech-1", "tech-2"])),
)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_store_fed_in_any_grouping_of_writes_holds_what_one_fed_event_by_event_holds(data):
    """Tickets' events and assignments, interleaved in any order and cut into writes anywhere: the same events,
    summaries, index entries and counts as a store given one at a time, and every count that of its entries."""
    per_ticket = [ticket_actions(data, f"t-{number}") for number in range(data.draw(st.integers(1, 3), "tickets"))]
    merged = []
    while any(per_ticket):
        merged.append(per_ticket[data.draw(st.sampled_from([i for i, left in enumerate(per_ticket) if left]))].pop(0))
    cuts = data.draw(st.lists(st.booleans(), min_size=len(merged), max_size=len(merged)), "cut after")
    one_at_a_time, grouped = TicketStore(LocalStore(None)), TicketStore(LocalStore(None))
    try:
        for action in merged:
            changes = Changes()
            act(one_at_a_time, changes, action)
            one_at_a_time.store.write(changes)
        changes = Changes()
        for action, cut in zip(merged, cuts, strict=True):
            act(grouped, changes, action)
            if cut:
                grouped.store.write(changes)
                changes = Changes()
        grouped.store.write(changes)
        assert held(grouped) == held(one_at_a_time)
        assert counted(grouped) == counted(one_at_a_time) == entries_per_value(one_at_a_time)
        assert index_entries(grouped) == indexed_by_summaries(grouped), "each ticket indexed as it stands"
    finally:
        one_at_a_time.store.close()
        grouped.store.close()


def ticket_actions(data, ticket_id):
    """A ticket's events, as its commands decided them (those its state refused left out), and assignments."""
    client, requester = data.draw(st.sampled_from(["acme", "globex"])), data.draw(st.sampled_from(["al", "bo"]))
    ticket, actions = None, []
    for kind, value in [("create", None), *data.draw(st.lists(STEPS, max_size=8), ticket_id)]:
        if kind == "assign":
            actions.append(("assign", ticket_id, value))
            continue
        if kind == "create":
            command = create(ticket_id=ticket_id, client_id=client, requester_id=requester)
        elif kind == "status":
            command = ChangeStatus(ticket_id=ticket_id, status=value)
        elif kind == "priority":
            command = UpdateTicket(ticket_id=ticket_id, priority=value)
        else:
            command = worklog(ticket_id=ticket_id, minutes=value)
        try:
            decided = decide(ticket, command, context())
        except DomainError:
            continue
        ticket = fold(ticket, decided)
        actions += [("event", event) for event in decided]
    return actions


def act(tickets, changes, action):
    if action[0] == "assign":
        tickets.assign(changes, action[1], action[2])
    else:
        fed(tickets, changes, action[1])


def index_entries(tickets: TicketStore) -> set[bytes]:
    return {key for key, _ in tickets.store.scan(b"i|", b"i|")}


def indexed_by_summaries(tickets: TicketStore) -> set[bytes]:
    """The index entries each ticket's summary and assignee call for."""
    return {
        entry
        for ticket_id in tickets.ticket_ids()
        for entry in _index_entries(ticket_id, tickets._summary(ticket_id), tickets.assignee(ticket_id))
    }


def counted(tickets: TicketStore) -> dict[bytes, int]:
    """The count of each index value the store keeps (a count down to 0 is as good as none)."""
    counts = {key: int(value) for key, value in tickets.store.scan(b"n|", b"n|")}
    return {key: count for key, count in counts.items() if count}


def entries_per_value(tickets: TicketStore) -> dict[bytes, int]:
    """The entries of each index value, counted from the entries themselves."""
    return dict(Counter(b"n|" + key[2:].rsplit(b"\x00", 2)[0] for key, _ in tickets.store.scan(b"i|", b"i|")))


def rebuilt(tickets, records):
    """Another store, restored from `records` (key, value) in the order given."""
    elsewhere = TicketStore(LocalStore(None))
    changes = Changes()
    for key, value in records:
        elsewhere.restore(changes, 0, key, value)
    elsewhere.store.write(changes)
    return elsewhere


def every_record(tickets):
    """The changelog records a writer taking the partition over writes: every ticket's, from its id."""
    return [record for ticket_id in tickets.ticket_ids() for record in tickets.records_of(ticket_id.encode())]


def test_changelog_records_rebuild_tickets_and_indexes_in_another_store(tickets):
    keep(tickets, events_of(create(ticket_id="t-1")))
    stale = every_record(tickets)  # t-1's record as it was: compaction may keep it a while after the latest
    keep(tickets, events_of(create(ticket_id="t-1"), ChangeStatus(ticket_id="t-1", status=TicketStatus.IN_PROGRESS)))
    keep(tickets, events_of(create(ticket_id="t-2", client_id="globex"), worklog(ticket_id="t-2")))
    records = every_record(tickets)
    assert len(records) == 2, "a ticket of a few events is one record"
    elsewhere = rebuilt(tickets, records + stale)
    try:
        for ticket_id in ("t-1", "t-2"):
            assert elsewhere.load(ticket_id) == tickets.load(ticket_id)
        assert listing(elsewhere, Filters(status=TicketStatus.IN_PROGRESS)) == ["t-1"]
        assert listing(elsewhere, Filters(status=TicketStatus.NEW)) == ["t-2"]
        assert listing(elsewhere, Filters(client_id="globex")) == ["t-2"]
        assert held(elsewhere) == held(tickets), "events, summaries, index entries and counts alike, byte for byte"
    finally:
        elsewhere.store.close()


def held(tickets: TicketStore) -> dict[bytes, bytes]:
    """What the store holds of its tickets (events, summaries, index entries and their counts; a count down to 0 is
    as good as none)."""
    return {
        key: value
        for key, value in tickets.store.scan(b"", b"")
        if key[:2] in (b"t|", b"s|", b"i|") or (key[:2] == b"n|" and value != b"0")
    }


def test_what_an_event_changes_is_what_the_writer_writes_and_a_busy_ticket_never_makes_a_large_record(tickets):
    """A ticket with 2,500 worklogs: in one record, its history would have passed the 1 MB Kafka accepts."""
    events = events_of(create(), *(worklog(minutes=1) for _ in range(2_500)))
    changed = keep(tickets, events)
    assert all(len(keys) == 1 for keys in changed), "each event changes the record of its run"
    written = {key: value for keys in changed for key in keys for key, value in tickets.records_of(key)}
    assert len(written) == -(-len(events) // EVENTS_PER_RECORD)
    assert sum(map(len, written.values())) > 1_000_000 and max(map(len, written.values())) < 100_000
    assert written == dict(every_record(tickets)), "what a writer taking the partition over writes, too"
    elsewhere = rebuilt(tickets, written.items())
    try:
        assert elsewhere.load("t-1") == tickets.load("t-1") == fold(None, events)
        assert elsewhere.load("t-1").worklog_minutes == 2_500
    finally:
        elsewhere.store.close()


def test_a_run_of_long_comments_ends_before_its_record_passes_its_bytes(tickets):
    body = "打印机坏了 " * 3_300  # 19,800 characters, 53 KB of JSON: 4 such comments to a run
    comments = [AddComment("t-1", uuid.uuid4(), "alice", body, True) for _ in range(12)]
    events = events_of(create(), *comments)
    written = {key: value for keys in keep(tickets, events) for key in keys for key, value in tickets.records_of(key)}
    assert len(written) == 3 and max(map(len, written.values())) <= RECORD_BYTES + 1_000
    assert written == dict(every_record(tickets))
    elsewhere = rebuilt(tickets, written.items())
    try:
        assert elsewhere.load("t-1") == tickets.load("t-1") == fold(None, events)
    finally:
        elsewhere.store.close()


def test_a_changelog_record_supersedes_a_summary_an_event_gave_earlier_in_the_same_write(tickets):
    events = events_of(create(), worklog(), worklog())
    keep(tickets, events)
    (record,) = every_record(tickets)
    elsewhere = TicketStore(LocalStore(None))
    try:
        changes = Changes()
        fed(elsewhere, changes, events[0])
        elsewhere.restore(changes, 0, *record)
        elsewhere.store.write(changes)
        assert elsewhere.version("t-1") == 3 and held(elsewhere) == held(tickets)
    finally:
        elsewhere.store.close()


def test_the_log_fills_an_event_a_cut_short_changelog_left_out_and_the_newer_summary_stays(tickets):
    """Events 64 and 65 changed two records; the writer died after the second's (run 1, summary at version 65),
    before the first's: run 0's record still ends at event 63. A restore resumes the log before event 64."""
    events = events_of(
        create(),
        *(worklog(minutes=1) for _ in range(63)),
        ChangeStatus(ticket_id="t-1", status=TicketStatus.IN_PROGRESS),
    )
    assert len(events) == EVENTS_PER_RECORD + 1
    keep(tickets, events[:63])
    (earlier,) = every_record(tickets)
    keep(tickets, events[63:])
    latest = every_record(tickets)
    elsewhere = rebuilt(tickets, [earlier, latest[1]])
    try:
        assert elsewhere.version("t-1") == 65 and elsewhere.load("t-1") != tickets.load("t-1"), "event 64 is missing"
        assert keep(elsewhere, events[:63]) == [set()] * 63
        assert keep(elsewhere, events[63:]) == [{b"t-1"}, set()], "64 fills its run: the ticket's records again"
        assert elsewhere.load("t-1") == tickets.load("t-1")
        assert dict(every_record(elsewhere)) == dict(latest)
        assert listing(elsewhere, Filters(status=TicketStatus.IN_PROGRESS)) == ["t-1"]
    finally:
        elsewhere.store.close()


def test_a_record_of_the_earlier_layout_a_whole_ticket_in_one_restores_too(tickets):
    events = events_of(create(), worklog(minutes=20))
    keep(tickets, events)
    summary = json.loads(tickets.store.get(b"s|t-1"))
    whole = json.dumps(summary).encode() + b"\n" + b"\n".join(encode(event) for event in events)
    older = json.dumps({**summary, "version": 1}).encode() + b"\n" + encode(events[0])
    elsewhere = rebuilt(tickets, [(b"t-1", whole), (b"t-1", older)])
    try:
        assert elsewhere.load("t-1") == tickets.load("t-1") and elsewhere.version("t-1") == 2
        assert listing(elsewhere, Filters(client_id="acme")) == ["t-1"]
    finally:
        elsewhere.store.close()


def test_a_store_written_in_another_layout_is_started_over(tmp_path):
    earlier = LocalStore(tmp_path / "intake")
    changes = Changes()
    changes.put(b"t|t-1", b"a whole ticket, as an earlier release kept it")
    changes.restored()
    earlier.write(changes)
    earlier.close()
    reopened = LocalStore(tmp_path / "intake", LAYOUT)
    assert not reopened.is_restored and reopened.get(b"t|t-1") is None, "restored again, from the changelog"
    reopened.clear()  # as a store ahead of its log is: the layout it is written in stays
    changes = Changes()
    changes.restored()
    reopened.write(changes)
    reopened.close()
    again = LocalStore(tmp_path / "intake", LAYOUT)
    assert again.is_restored, "the same layout: kept"
    again.close()


def test_a_count_adds_to_what_the_store_holds_when_written_and_a_value_put_unencoded_is_encoded_once():
    store = LocalStore(None)
    try:
        one, two = Changes(), Changes()
        one.count(b"n|all", 2)
        two.count(b"n|all", 3)
        two.count(b"n|all", -1)
        store.write(one)
        store.write(two)
        assert store.get(b"n|all") == b"4", "writes prepared side by side each add their own"
        late, encoded = Changes(), []
        summary = {"version": 1}
        late.put_unencoded(b"s|t-1", summary, lambda value: encoded.append(value) or json.dumps(value).encode())
        assert late.unencoded(b"s|t-1") is summary and encoded == [], "read back as it is"
        late.put_unencoded(b"s|t-1", {"version": 2}, lambda value: encoded.append(value) or json.dumps(value).encode())
        assert store.get(b"s|t-1") is None and store.get(b"s|t-1", late) == b'{"version": 2}'
        store.write(late)
        assert store.get(b"s|t-1") == b'{"version": 2}' and encoded == [{"version": 2}] * 2, "once, and once read"
        overwritten = Changes()
        overwritten.put_unencoded(b"s|t-2", summary, lambda value: json.dumps(value).encode())
        overwritten.put(b"s|t-2", b"{}")
        assert overwritten.unencoded(b"s|t-2") is None
        store.write(overwritten)
        assert store.get(b"s|t-2") == b"{}", "a put after it wins"
    finally:
        store.close()


def test_a_store_is_restored_only_once_marked_so_and_a_temporary_one_is_removed_on_close(tmp_path):
    store = LocalStore(tmp_path / "intake")
    assert not store.is_restored
    changes = Changes()
    changes.restored()
    store.write(changes)
    store.close()
    reopened = LocalStore(tmp_path / "intake")
    assert reopened.is_restored
    reopened.close()
    temporary = LocalStore(None)
    temporary.close()
    assert not temporary.path.exists()
