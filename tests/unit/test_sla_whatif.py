"""The what-if as a pure function: a period's ticket events replayed under the configuration in force and under a
candidate, compliance side by side, the clocks whose verdict changes listed with their deadlines under both."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sla.agreements import Agreements
from sla.clocks import AT_CREATION
from sla.whatif import Candidate, Comparison, Replay, Verdict, compliance_pct, in_force
from tests.builders import T0, a_ticket_created
from tests.unit.test_sla_clocks import HOUR, MINUTE, RESOLUTION, Story, agreements_with, config
from tests.unit.test_sla_clocks import policy as policy_change
from ticketstream_shared.contract import TicketEvent
from ticketstream_shared.contract.sla import CalendarChanged, CalendarData, PolicyData, SlaMetric

FIRST = SlaMetric.FIRST_RESPONSE
DAY = 24 * HOUR


def default_policy(resolution_hours: int, **data: Any) -> PolicyData:
    """The built-in default policy with another P2 resolution target."""
    targets = {"P2": {"first_response_minutes": 60, "resolution_minutes": resolution_hours * 60}}
    return PolicyData.model_validate({"rank": 1000, "targets": targets, **data})


def what_if(
    events: list[TicketEvent],
    candidate: Candidate,
    agreements: Agreements | None = None,
    opened_from: datetime = T0,
    until: datetime = T0 + 2 * DAY,
) -> Comparison:
    agreements = agreements or Agreements.with_defaults()
    replay = Replay(opened_from, until, in_force(agreements), in_force(agreements, candidate))
    for event in events:
        replay.fold(event)
    return replay.comparison()


def resolved(at: datetime, agreements: Agreements | None = None, answered: datetime | None = None) -> Story:
    story = Story(agreements)
    story.comment(answered or T0 + 30 * MINUTE)
    story.status(at, "open", "resolved")
    return story


def test_a_tighter_resolution_target_turns_a_met_ticket_into_a_breach() -> None:
    story = resolved(T0 + 5 * HOUR)  # P2 on the built-in default: 8 h to resolve, 24x7
    comparison = what_if(story.told, Candidate(policies={"default": default_policy(4)}))

    assert comparison.actual.total[RESOLUTION] == Counter({Verdict.MET: 1})
    assert comparison.candidate.total[RESOLUTION] == Counter({Verdict.BREACHED: 1})
    assert compliance_pct(comparison.actual.total[RESOLUTION]) == 100.0
    assert compliance_pct(comparison.candidate.total[RESOLUTION]) == 0.0
    assert comparison.actual.total[FIRST] == comparison.candidate.total[FIRST] == Counter({Verdict.MET: 1})
    (changed,) = comparison.changed
    assert (changed.ticket_id, changed.metric) == (story.ticket_id, RESOLUTION)
    assert changed.actual is not None and changed.candidate is not None
    assert changed.actual.deadline == T0 + 8 * HOUR and changed.candidate.deadline == T0 + 4 * HOUR
    assert (changed.candidate.terms.policy_id, changed.candidate.terms.policy_version) == ("default", 2)


def test_a_holiday_on_the_candidate_calendar_moves_the_deadline() -> None:
    """Office hours Monday to Friday 09-17 UTC, 8 business hours to resolve: opened Monday 09:00 (T0) and resolved
    Tuesday 10:00 is late; with Monday a holiday the clock starts Tuesday 09:00 and it is on time."""
    office = {"timezone": "UTC", "week": {day: [{"start": "09:00", "end": "17:00"}] for day in ("monday", "tuesday")}}
    agreements = agreements_with(
        config(CalendarChanged, calendar_id="office", data=office),
        policy_change("office-hours", 60, 8 * 60, calendar_id="office"),
    )
    story = resolved(T0 + DAY + HOUR, agreements)
    holiday = CalendarData.model_validate({**office, "holidays": [T0.date().isoformat()]})
    comparison = what_if(story.told, Candidate(calendars={"office": holiday}), agreements)

    (changed,) = comparison.changed
    assert changed.metric is RESOLUTION and changed.actual is not None and changed.candidate is not None
    assert (changed.actual.verdict, changed.actual.deadline) == (Verdict.BREACHED, T0 + 8 * HOUR)
    assert (changed.candidate.verdict, changed.candidate.deadline) == (Verdict.MET, T0 + DAY + 8 * HOUR)
    assert changed.candidate.terms.calendar.version == 2 and changed.actual.terms.calendar.version == 1


def test_pauses_are_honoured_on_both_sides() -> None:
    """Waiting on the customer 5 of the 9 hours before it was resolved: 4 business hours count."""
    story = Story()
    story.status(T0 + HOUR, "new", "waiting_on_customer")
    story.status(T0 + 6 * HOUR, "waiting_on_customer", "open")
    story.comment(T0 + 6 * HOUR)
    story.status(T0 + 9 * HOUR, "open", "resolved")

    tighter = what_if(story.told, Candidate(policies={"default": default_policy(5)}))
    assert tighter.candidate.total[RESOLUTION] == Counter({Verdict.MET: 1})
    assert not [changed for changed in tighter.changed if changed.metric is RESOLUTION]

    never_paused = what_if(story.told, Candidate(policies={"default": default_policy(8, pause_statuses=[])}))
    assert never_paused.actual.total[RESOLUTION] == Counter({Verdict.MET: 1})
    assert never_paused.candidate.total[RESOLUTION] == Counter({Verdict.BREACHED: 1})


def test_changing_nothing_gives_what_happened() -> None:
    """The same policy again: both sides equal, nothing changed, and each verdict is what the live clocks emitted
    (a breach event: breached; else a met event: met; else running)."""
    end = T0 + 12 * HOUR
    on_time = resolved(T0 + 5 * HOUR)
    late_answer = resolved(T0 + 6 * HOUR, answered=T0 + 2 * HOUR)
    paused = Story(at=T0 + HOUR)
    paused.status(T0 + 90 * MINUTE, "new", "waiting_on_customer")  # 30 of its 60 minutes to answer used
    still_open = Story(priority="P1", at=T0 + 3 * HOUR)
    stories = [on_time, late_answer, paused, still_open]
    for story in stories:
        story.tick(end)

    same = Candidate(policies={"default": Agreements.with_defaults().policies["default"].versions[0].value})
    comparison = what_if([event for story in stories for event in story.told], same, until=end)

    assert comparison.changed == []
    assert comparison.actual == comparison.candidate
    emitted: Counter[tuple[SlaMetric, Verdict]] = Counter()
    for story in stories:
        for metric in SlaMetric:
            kinds = {event.event_type for event in story.out if event.data.metric is metric}
            if not kinds:
                continue  # no clock of this metric: none counted
            verdict = Verdict.BREACHED if "sla.breached" in kinds else Verdict.MET if "sla.met" in kinds else None
            emitted[(metric, verdict or Verdict.RUNNING)] += 1
    assert emitted == Counter(
        {(metric, verdict): count for metric in SlaMetric for verdict, count in comparison.actual.total[metric].items()}
    )
    assert comparison.actual.total[FIRST] == Counter({Verdict.MET: 1, Verdict.BREACHED: 2, Verdict.RUNNING: 1})


def test_only_tickets_opened_in_the_period_count_and_only_up_to_its_end() -> None:
    before = a_ticket_created(occurred_at=T0 - MINUTE)
    after = a_ticket_created(occurred_at=T0 + HOUR)
    inside = Story(at=T0 + 10 * MINUTE)
    inside.status(T0 + HOUR, "new", "resolved")  # after the period: still running at its end
    comparison = what_if([before, *inside.told, after], Candidate(), until=T0 + HOUR)

    assert comparison.actual.total == {metric: Counter({Verdict.RUNNING: 1}) for metric in AT_CREATION}


def test_figures_per_priority_and_per_client() -> None:
    acme = resolved(T0 + 5 * HOUR)  # P2: 8 h to resolve, 4 h under the candidate
    globex = a_ticket_created(client_id="globex", priority="P1", occurred_at=T0)  # 4 h to resolve, never resolved
    comparison = what_if([*acme.told, globex], Candidate(policies={"default": default_policy(4)}))

    actual, candidate = comparison.actual, comparison.candidate
    assert set(actual.by_client) == {"acme", "globex"} and set(actual.by_priority) == {"P1", "P2"}
    assert actual.by_client["acme"][RESOLUTION] == actual.by_priority["P2"][RESOLUTION] == Counter({Verdict.MET: 1})
    assert (
        actual.by_client["globex"][RESOLUTION] == actual.by_priority["P1"][RESOLUTION] == Counter({Verdict.BREACHED: 1})
    )
    assert candidate.by_client["acme"][RESOLUTION] == Counter({Verdict.BREACHED: 1})
    # The candidate covers P2 only: globex's P1 ticket has no clocks under it, and that is a change too.
    assert set(candidate.by_client) == {"acme"} and set(candidate.by_priority) == {"P2"}
    dropped = [changed for changed in comparison.changed if changed.client_id == "globex"]
    assert [(changed.metric, changed.candidate) for changed in dropped] == [(FIRST, None), (RESOLUTION, None)]


def test_the_live_configuration_is_left_as_it_was() -> None:
    agreements = Agreements.with_defaults()
    in_force(
        agreements,
        Candidate(
            policies={"default": default_policy(4)}, calendars={"new": CalendarData(timezone="UTC", always_open=True)}
        ),
    )
    assert len(agreements.policies["default"].versions) == 1 and "new" not in agreements.calendars
