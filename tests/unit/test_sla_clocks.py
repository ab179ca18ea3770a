"""SLA clocks as pure functions: the ticket's story in, sla events out, in event time. Includes the anchors' bugs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sla.agreements import Agreements
from sla.clocks import ClockStatus, TicketClocks
from sla.timekeeper import Timekeeper
from tests.builders import T0, a_ticket_created
from ticketstream_shared.contract import (
    CommentAdded,
    TicketEvent,
    TicketStatusChanged,
    TicketUpdated,
)
from ticketstream_shared.contract.sla import (
    CalendarChanged,
    ClientAgreementChanged,
    PolicyChanged,
    SlaConfigEvent,
    SlaEvent,
    SlaMetric,
)

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
FIRST, RESOLUTION = SlaMetric.FIRST_RESPONSE, SlaMetric.RESOLUTION


class Story:
    """One ticket told event by event into a Timekeeper, with the wall clock moved by hand."""

    def __init__(self, agreements: Agreements | None = None, priority: str = "P2", at: datetime = T0) -> None:
        self.keeper = Timekeeper(agreements or Agreements.with_defaults())
        self.created = a_ticket_created(priority=priority, occurred_at=at)
        self.ticket_id = self.created.ticket_id
        self.version = 1
        self.told: list[TicketEvent] = [self.created]
        self.out: list[SlaEvent] = self.keeper.handle(self.created, 0)

    def _next(self, event_class: type[TicketEvent], at: datetime, data: dict[str, Any]) -> list[SlaEvent]:
        self.version += 1
        event = event_class(
            event_id=uuid.uuid4(),
            occurred_at=at,
            ticket_id=self.ticket_id,
            client_id="acme",
            aggregate_version=self.version,
            producer="intake",
            correlation_id="test",
            data=data,
        )
        self.told.append(event)
        emitted = self.keeper.handle(event, 0)
        self.out.extend(emitted)
        return emitted

    def status(self, at: datetime, from_status: str, to_status: str) -> list[SlaEvent]:
        return self._next(TicketStatusChanged, at, {"from_status": from_status, "to_status": to_status})

    def comment(
        self, at: datetime, role: str = "technician", public: bool = True, author_id: str = "x"
    ) -> list[SlaEvent]:
        data = {
            "comment_id": uuid.uuid4(),
            "author_id": author_id,
            "author_role": role,
            "body": "hi",
            "visibility": "public" if public else "internal",
        }
        return self._next(CommentAdded, at, data)

    def priority(self, at: datetime, old: str, new: str) -> list[SlaEvent]:
        return self._next(TicketUpdated, at, {"changes": {"priority": new}, "previous": {"priority": old}})

    def tick(self, now: datetime) -> list[SlaEvent]:
        emitted = self.keeper.tick(now)
        self.out.extend(emitted)
        return emitted

    @property
    def state(self) -> TicketClocks:
        state = self.keeper.ticket(self.ticket_id)
        assert state is not None
        return state

    def kinds(self, events: list[SlaEvent] | None = None) -> list[tuple[str, str]]:
        return [(event.event_type, event.data.metric.value) for event in (self.out if events is None else events)]


def config(event_class: type[SlaConfigEvent], at: datetime = T0 - HOUR, **fields: Any) -> SlaConfigEvent:
    return event_class(
        event_id=uuid.uuid4(),
        occurred_at=at,
        effective_at=at,
        producer="sla",
        correlation_id="test",
        changed_by="admin",
        **fields,
    )


def policy(policy_id: str, first: int, resolution: int, at: datetime = T0 - HOUR, **data: Any) -> SlaConfigEvent:
    targets = {p: {"first_response_minutes": first, "resolution_minutes": resolution} for p in ("P1", "P2", "P3")}
    return config(PolicyChanged, at, policy_id=policy_id, data={"targets": targets, "rank": 1, **data})


def agreements_with(*changes: SlaConfigEvent) -> Agreements:
    agreements = Agreements.with_defaults()
    for change in changes:
        agreements.apply(change)
    return agreements


# --- starting, meeting, pausing ---------------------------------------------------------------------------------


def test_a_new_ticket_starts_both_clocks_on_the_default_policy() -> None:
    story = Story(priority="P2")
    assert story.kinds() == [("sla.clock_started", "first_response"), ("sla.clock_started", "resolution")]
    first = story.out[0]
    assert first.data.policy_id == "default" and first.data.calendar_id == "default"
    assert first.data.deadline == T0 + HOUR  # P2: 60 minutes to a first answer, 24x7
    assert story.out[1].data.deadline == T0 + 8 * HOUR


def test_warnings_and_breach_fire_at_their_moments_once() -> None:
    story = Story(priority="P2")
    assert story.tick(T0 + 44 * MINUTE) == []
    warning = story.tick(T0 + 45 * MINUTE)
    assert story.kinds(warning) == [("sla.warning", "first_response")]
    assert warning[0].occurred_at == T0 + 45 * MINUTE and warning[0].data.threshold == 0.75
    assert warning[0].data.remaining_business_seconds == 15 * 60
    later = story.tick(T0 + 2 * HOUR)
    assert [(e.event_type, getattr(e.data, "threshold", None)) for e in later] == [
        ("sla.warning", 0.9),
        ("sla.breached", None),
    ]
    assert later[1].occurred_at == T0 + HOUR and later[1].data.remaining_business_seconds == 0
    assert story.tick(T0 + 3 * HOUR) == []


def test_a_paused_partition_holds_its_alarms_back_while_the_others_ring() -> None:
    """A worker rebuilding one partition's clocks (a take-over) keeps ringing the alarms of the partitions it holds
    whole; the paused one's ring once it is no longer paused."""
    keeper = Timekeeper(Agreements.with_defaults())
    held, rebuilt = a_ticket_created(), a_ticket_created()
    keeper.handle(held, 0)
    keeper.handle(rebuilt, 1)
    assert keeper.next_due({1}) == keeper.next_due({0}) == keeper.next_due() == T0 + 45 * MINUTE
    assert keeper.next_due({0, 1}) is None
    ringing = keeper.tick(T0 + 45 * MINUTE, paused={1})
    assert [(e.event_type, e.ticket_id) for e in ringing] == [("sla.warning", held.ticket_id)]
    assert keeper.next_due({1}) > T0 + 45 * MINUTE  # partition 0's next alarm; partition 1's waits
    late = keeper.tick(T0 + 46 * MINUTE)
    assert [(e.event_type, e.ticket_id) for e in late] == [("sla.warning", rebuilt.ticket_id)]
    assert late[0].occurred_at == T0 + 45 * MINUTE  # late, never lost


def test_a_configuration_change_waits_while_a_partition_is_paused() -> None:
    """A change reaches every ticket in one sweep: not while some tickets' clocks are still being rebuilt."""
    nights = {"timezone": "UTC", "week": {day: [{"start": "20:00", "end": "08:00"}] for day in ("monday",)}}
    story = Story(agreements_with(policy("p", 120, 600, calendar_id="default")))
    story.keeper.record_change(config(CalendarChanged, at=T0 + HOUR, calendar_id="default", data=nights))
    assert story.keeper.tick(T0 + HOUR, paused={5}) == []
    assert story.keeper.tick(T0 + HOUR)[0].data.calendar_version == 2


def test_a_threshold_a_breath_below_the_target_warns_with_its_own_value() -> None:
    """Found by the fuzz (a what-if answered 500, and a live policy stopped the worker): alarm kinds carried the
    threshold as ":g" text, which made 0.9999999999999999 a warning at 1, which no warning may have; and two
    thresholds alike to six digits one alarm."""
    thresholds = [0.9999999999999999, 0.99999999, 0.9999999]
    story = Story(agreements_with(policy("edge", 60, 600, warning_thresholds=thresholds)))
    raised = story.tick(T0 + HOUR)
    warnings = [event.data.threshold for event in raised if event.event_type == "sla.warning"]
    assert sorted(warnings[:3]) == sorted(thresholds), raised
    assert [event.event_type for event in raised if event.data.metric is FIRST][-1] == "sla.breached"


def test_alarm_ids_derive_from_ticket_metric_kind_and_deadline() -> None:
    """Deciding the same history twice (a restart replaying the log) yields the same alarm ids."""
    first = Story()
    replay = Timekeeper(Agreements.with_defaults())
    replay.handle(first.created, 0)
    fired = first.tick(T0 + 9 * HOUR)
    assert len(fired) == 6
    assert [e.event_id for e in fired] == [e.event_id for e in replay.tick(T0 + 9 * HOUR)]
    assert len({e.event_id for e in fired}) == 6


def test_first_response_met_only_by_a_public_answer_of_staff() -> None:
    """zammad #5177: a requester's reply or an internal note is no first response; the first public technician
    comment is, and later comments change nothing."""
    story = Story()
    assert story.comment(T0 + 10 * MINUTE, role="requester") == []
    assert story.comment(T0 + 20 * MINUTE, role="technician", public=False) == []
    met = story.comment(T0 + 30 * MINUTE, role="technician")
    assert story.kinds(met) == [("sla.met", "first_response")]
    assert met[0].data.elapsed_business_seconds == 30 * 60
    assert story.comment(T0 + 40 * MINUTE, role="admin") == []
    assert story.tick(T0 + 2 * HOUR) == []  # no warning or breach of a met clock
    assert story.state.clock(RESOLUTION).status is ClockStatus.RUNNING


def test_no_breach_while_waiting_on_the_customer() -> None:
    """glpi #24481: a ticket pending on the customer past its deadline does not breach; time starts again after."""
    story = Story()
    paused = story.status(T0 + 30 * MINUTE, "new", "waiting_on_customer")
    assert story.kinds(paused) == [("sla.paused", "first_response"), ("sla.paused", "resolution")]
    assert story.tick(T0 + 10 * HOUR) == []
    resumed = story.status(T0 + 10 * HOUR, "waiting_on_customer", "open")
    assert resumed[0].event_type == "sla.resumed" and resumed[0].data.deadline == T0 + 10 * HOUR + 30 * MINUTE
    assert [e.event_type for e in story.tick(T0 + 10 * HOUR + 30 * MINUTE)] == [
        "sla.warning",
        "sla.warning",
        "sla.breached",
    ]


def test_pause_time_is_kept_when_the_priority_changes() -> None:
    """glpi #15605: P3 (4 h / 24 h) paused for 5 h, then raised to P2: the paused hours do not count, the 1 h
    already elapsed does, and the new deadline is 1 h - 1 h = now for first response, 8 h - 1 h for resolution."""
    story = Story(priority="P3")
    story.status(T0 + HOUR, "new", "waiting_on_customer")
    story.status(T0 + 6 * HOUR, "waiting_on_customer", "open")
    retargeted = story.priority(T0 + 6 * HOUR, "P3", "P2")
    assert story.kinds(retargeted)[:2] == [("sla.retargeted", "first_response"), ("sla.retargeted", "resolution")]
    first, resolution = retargeted[0].data, retargeted[1].data
    assert first.elapsed_business_seconds == 3600 and first.previous_target_business_seconds == 4 * 3600
    assert first.deadline == T0 + 6 * HOUR
    assert resolution.elapsed_business_seconds == 3600
    assert resolution.deadline == T0 + 6 * HOUR + 7 * HOUR
    # A tighter target raises what is already true at once: first response is at 100% of its new target.
    assert [e.event_type for e in retargeted[2:]] == ["sla.warning", "sla.warning", "sla.breached"]


def test_resolved_meets_both_and_a_reopen_resumes_resolution_with_its_elapsed_time() -> None:
    story = Story()
    met = story.status(T0 + 30 * MINUTE, "new", "resolved")
    assert story.kinds(met) == [("sla.met", "first_response"), ("sla.met", "resolution")]
    assert story.tick(T0 + 20 * HOUR) == []
    reopened = story.status(T0 + 20 * HOUR, "resolved", "open")
    assert story.kinds(reopened) == [("sla.resumed", "resolution")]
    assert reopened[0].data.elapsed_business_seconds == 30 * 60
    assert reopened[0].data.deadline == T0 + 20 * HOUR + 7 * HOUR + 30 * MINUTE


def test_replayed_events_change_nothing() -> None:
    story = Story()
    story.status(T0 + HOUR, "new", "open")
    before = story.state
    replayed = TicketStatusChanged(
        event_id=uuid.uuid4(),
        occurred_at=T0 + HOUR,
        ticket_id=story.ticket_id,
        client_id="acme",
        aggregate_version=2,
        producer="intake",
        correlation_id="test",
        data={"from_status": "new", "to_status": "waiting_on_customer"},
    )
    assert story.keeper.handle(replayed, 0) == [] and story.state == before


# --- policies, calendars, agreements ------------------------------------------------------------------------------


def test_a_deactivated_policy_stops_escalating() -> None:
    """zammad #4353: once the policy timing a ticket is deactivated (and nothing else covers it), the clock stops:
    no warning or breach afterwards, and a clock_stopped event says why."""
    agreements = agreements_with(policy("vip", 30, 120), policy("default", 60, 480, active=False))
    story = Story(agreements)
    assert story.out[0].data.policy_id == "vip"
    story.keeper.record_change(policy("vip", 30, 120, at=T0 + 10 * MINUTE, active=False))
    stopped = story.tick(T0 + 10 * MINUTE)
    assert story.kinds(stopped) == [("sla.clock_stopped", "first_response"), ("sla.clock_stopped", "resolution")]
    assert "no active policy" in stopped[0].data.reason
    assert story.tick(T0 + 10 * HOUR) == []


def test_a_deactivated_policy_hands_the_ticket_to_the_next_match_keeping_elapsed_time() -> None:
    agreements = agreements_with(policy("vip", 30, 120))
    story = Story(agreements)
    story.keeper.record_change(policy("vip", 30, 120, at=T0 + 10 * MINUTE, active=False))
    moved = story.tick(T0 + 10 * MINUTE)
    assert [(e.event_type, e.data.policy_id) for e in moved] == [("sla.retargeted", "default")] * 2
    assert moved[0].data.elapsed_business_seconds == 600 and moved[0].data.deadline == T0 + HOUR
    assert [e.occurred_at for e in story.tick(T0 + 2 * HOUR) if e.event_type == "sla.breached"] == [T0 + HOUR]


def test_first_match_wins_by_rank_on_client_tier_priority_and_category() -> None:
    office = {"timezone": "Europe/Berlin", "week": {"monday": [{"start": "09:00", "end": "17:00"}]}}
    agreements = agreements_with(
        config(CalendarChanged, calendar_id="berlin", data=office),
        config(ClientAgreementChanged, client_id="acme", data={"calendar_id": "berlin", "tier": "gold"}),
        policy("gold-network", 5, 50, match={"tiers": ["gold"], "categories": ["network"]}),
        policy("gold", 10, 100, rank=2, match={"tiers": ["gold"]}),
        policy("silver", 1, 1, rank=0, match={"tiers": ["silver"]}),
    )
    story = Story(agreements)  # category hardware
    started = story.out[0].data
    assert (started.policy_id, started.calendar_id) == ("gold", "berlin")
    assert started.deadline == datetime(2026, 3, 2, 9, 10, tzinfo=UTC)  # 10:10 in Berlin (winter, UTC+1)


def test_a_calendar_change_retimes_running_clocks_from_its_effective_time() -> None:
    nights = {"timezone": "UTC", "week": {day: [{"start": "20:00", "end": "08:00"}] for day in ("monday",)}}
    agreements = agreements_with(policy("p", 120, 600, calendar_id="default"))
    story = Story(agreements)
    story.keeper.record_change(config(CalendarChanged, at=T0 + HOUR, calendar_id="default", data=nights))
    moved = story.tick(T0 + HOUR)
    first = moved[0].data
    assert (first.calendar_id, first.calendar_version, first.elapsed_business_seconds) == ("default", 2, 3600)
    assert first.deadline == datetime(2026, 3, 2, 21, 0, tzinfo=UTC)  # the hour left, from Monday 20:00


def test_backfilled_history_gets_the_same_events_as_live() -> None:
    """Event time: a history delivered all at once, long after, decides what a live run decided tick by tick."""
    live = Story()
    live.tick(T0 + 50 * MINUTE)
    live.comment(T0 + 70 * MINUTE)
    live.status(T0 + 2 * HOUR, "new", "waiting_on_customer")
    live.status(T0 + 5 * HOUR, "waiting_on_customer", "in_progress")
    live.tick(T0 + 20 * HOUR)
    backfill = Timekeeper(Agreements.with_defaults())
    out = [sla_event for event in live.told for sla_event in backfill.handle(event, 0)]
    out += backfill.tick(T0 + 20 * HOUR)

    def summary(events: list[SlaEvent]) -> list[tuple[uuid.UUID, str, datetime]]:
        return [(event.event_id, event.event_type, event.occurred_at) for event in events]

    assert summary(out) == summary(live.out)
    assert ("sla.breached", "first_response") in live.kinds() and ("sla.breached", "resolution") in live.kinds()


@pytest.mark.parametrize("hours", [0, 3, 30])
def test_remaining_business_time_adds_up_with_elapsed(hours: int) -> None:
    story = Story(priority="P3")
    story.status(T0 + hours * HOUR, "new", "waiting_on_customer")
    for event in story.out:
        assert event.data.elapsed_business_seconds + event.data.remaining_business_seconds == (
            event.data.target_business_seconds
        )
