"""Next reply: each wait of the requester after the first answer is timed, from their message to the next public
staff reply, where the terms set a target for it."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from sla import snapshots
from sla.agreements import Agreements
from sla.clocks import ClockStatus
from sla.views import ticket_view
from sla.whatif import Candidate, Verdict
from tests.builders import T0
from tests.unit.test_sla_clocks import HOUR, MINUTE, Story, agreements_with, config
from tests.unit.test_sla_service_terms import service
from tests.unit.test_sla_whatif import what_if
from ticketstream_shared.contract.sla import PolicyChanged, PolicyData, SlaMetric

NEXT = SlaMetric.NEXT_REPLY
SECOND = timedelta(seconds=1)


def replying(next_reply: int = 30, **data: Any) -> Agreements:
    """A policy for P2 tickets: 60 minutes to a first answer, `next_reply` minutes to each next reply, 24x7."""
    return agreements_with(policy("replying", 60, 8 * 60, next_reply_minutes=next_reply, **data))


def policy_with_next_reply(next_reply: int) -> PolicyData:
    targets = {"P2": {"first_response_minutes": 60, "next_reply_minutes": next_reply, "resolution_minutes": 480}}
    return PolicyData.model_validate({"rank": 1, "targets": targets})


def answered(story: Story, at: Any = T0 + 10 * MINUTE) -> Story:
    story.comment(at)  # the first answer
    return story


def policy(
    policy_id: str, first: int, resolution: int, next_reply_minutes: int | None = None, **data: Any
) -> PolicyChanged:
    """tests.unit.test_sla_clocks.policy, with a next-reply target for each priority."""
    targets = {
        p: {"first_response_minutes": first, "resolution_minutes": resolution, "next_reply_minutes": next_reply_minutes}
        for p in ("P1", "P2", "P3")
    }
    return config(PolicyChanged, T0 - HOUR, policy_id=policy_id, data={"targets": targets, "rank": 1, **data})


def test_no_target_no_clock() -> None:
    story = answered(Story())  # the built-in default promises no next reply
    assert story.comment(T0 + HOUR, role="requester") == []
    assert story.state.clock(NEXT) is None


def test_a_ticket_starts_without_one_and_the_first_answer_is_not_a_next_reply() -> None:
    story = Story(replying())
    assert NEXT not in {event.data.metric for event in story.out}
    # Writing again before the first answer: the first response still runs, no second promise starts.
    assert story.comment(T0 + 5 * MINUTE, role="requester") == []
    met = story.comment(T0 + 10 * MINUTE)
    assert story.kinds(met) == [("sla.met", "first_response")]


def test_a_requester_message_starts_a_round_the_next_staff_reply_meets() -> None:
    story = answered(Story(replying()))
    started = story.comment(T0 + HOUR, role="requester")
    assert story.kinds(started) == [("sla.clock_started", "next_reply")]
    assert started[0].data.deadline == T0 + HOUR + 30 * MINUTE and started[0].data.policy_id == "replying"
    assert story.comment(T0 + HOUR + 5 * MINUTE, role="requester") == []  # an answer is awaited already
    assert story.comment(T0 + HOUR + 6 * MINUTE, role="technician", public=False) == []  # a note answers no one
    met = story.comment(T0 + HOUR + 20 * MINUTE, role="manager")
    assert story.kinds(met) == [("sla.met", "next_reply")]
    assert met[0].data.elapsed_business_seconds == 20 * 60
    assert story.tick(T0 + 3 * HOUR) == []  # met: its alarms are gone


def test_a_late_round_warns_and_breaches_and_a_later_round_starts_afresh_remembering_it() -> None:
    story = answered(Story(replying()))
    story.comment(T0 + HOUR, role="requester")
    alarms = story.tick(T0 + HOUR + 30 * MINUTE)
    assert story.kinds(alarms) == [("sla.warning", "next_reply")] * 2 + [("sla.breached", "next_reply")]
    assert [event.occurred_at for event in alarms] == [
        T0 + HOUR + 22 * MINUTE + 30 * SECOND,
        T0 + HOUR + 27 * MINUTE,
        T0 + HOUR + 30 * MINUTE,
    ]
    story.comment(T0 + 2 * HOUR)
    again = story.comment(T0 + 3 * HOUR, role="requester")
    assert story.kinds(again) == [("sla.clock_started", "next_reply")]
    assert again[0].data.elapsed_business_seconds == 0 and again[0].data.deadline == T0 + 3 * HOUR + 30 * MINUTE
    clock = story.state.clock(NEXT)
    assert clock is not None and clock.raised == frozenset() and clock.breached_before
    assert story.tick(T0 + 3 * HOUR + 10 * MINUTE) == []  # the new round's own alarms, not the old ones'


def test_a_round_pauses_with_the_ticket_and_resolving_meets_it() -> None:
    story = answered(Story(replying()))
    story.status(T0 + 20 * MINUTE, "new", "waiting_on_customer")
    # The requester answers while the ticket waits on them: the round starts paused, intake's move to open resumes it.
    started = story.comment(T0 + HOUR, role="requester")
    assert story.kinds(started) == [("sla.clock_started", "next_reply"), ("sla.paused", "next_reply")]
    resumed = story.status(T0 + 2 * HOUR, "waiting_on_customer", "open")
    assert ("sla.resumed", "next_reply") in story.kinds(resumed)
    assert story.state.clock(NEXT).deadline == T0 + 2 * HOUR + 30 * MINUTE
    resolved = story.status(T0 + 2 * HOUR + 10 * MINUTE, "open", "resolved")
    assert ("sla.met", "next_reply") in story.kinds(resolved)
    # A message on a resolved ticket waits for no reply; a reopen brings back resolution only.
    assert story.comment(T0 + 3 * HOUR, role="requester") == []
    reopened = story.status(T0 + 4 * HOUR, "resolved", "open")
    assert story.kinds(reopened) == [("sla.resumed", "resolution")]


def test_a_reply_by_mail_for_the_requester_counts_as_theirs() -> None:
    story = answered(Story(replying()))
    assert story.comment(T0 + HOUR, role="integration", author_id="someone-else") == []
    started = story.comment(T0 + HOUR, role="integration", author_id="alice")  # the ticket's requester
    assert story.kinds(started) == [("sla.clock_started", "next_reply")]


def test_a_policy_change_retimes_a_running_round() -> None:
    story = answered(Story(replying(next_reply=30)))
    story.comment(T0 + HOUR, role="requester")
    story.keeper.record_change(
        config(
            PolicyChanged, T0 + HOUR + 10 * MINUTE, policy_id="replying", data=policy_with_next_reply(120).model_dump()
        )
    )
    story.tick(T0 + HOUR + 10 * MINUTE)
    clock = story.state.clock(NEXT)
    assert clock is not None and clock.terms.policy_version == 2
    assert clock.deadline == T0 + HOUR + 120 * MINUTE  # the 10 minutes elapsed are kept


def test_a_service_promising_next_reply_times_it() -> None:
    targets = {"P2": {"first_response_minutes": 30, "next_reply_minutes": 45, "resolution_minutes": 600}}
    story = answered(Story(agreements_with(service(targets=targets))))
    started = story.comment(T0 + HOUR, role="requester")
    assert started[0].data.policy_id == "service:hardware" and started[0].data.deadline == T0 + HOUR + 45 * MINUTE


def test_the_view_says_it_in_plain_words_and_a_snapshot_keeps_the_earlier_breach() -> None:
    story = answered(Story(replying()))
    story.comment(T0 + HOUR, role="requester")
    story.tick(T0 + 2 * HOUR)
    story.comment(T0 + 2 * HOUR)
    story.comment(T0 + 3 * HOUR, role="requester")
    clocks = {clock["metric"]: clock for clock in ticket_view(story.state, T0 + 3 * HOUR)["clocks"]}
    assert clocks["next_reply"]["status"] == ClockStatus.RUNNING
    assert clocks["next_reply"]["explanation"].startswith("We promised a reply to your message by ")
    assert snapshots.decode(snapshots.encode(story.state), story.keeper.agreements) == story.state


def test_the_what_if_counts_a_ticket_late_if_any_round_was() -> None:
    story = answered(Story(replying(next_reply=30)))
    story.comment(T0 + HOUR, role="requester")
    story.comment(T0 + 2 * HOUR)  # 60 minutes: late for 30, on time for 90
    story.comment(T0 + 3 * HOUR, role="requester")
    story.comment(T0 + 3 * HOUR + 5 * MINUTE)  # on time
    until = T0 + 5 * HOUR
    looser = Candidate(policies={"replying": policy_with_next_reply(90)})
    comparison = what_if(story.told, looser, agreements=replying(next_reply=30), until=until)
    assert comparison.actual.total[NEXT] == Counter({Verdict.BREACHED: 1})
    assert comparison.candidate.total[NEXT] == Counter({Verdict.MET: 1})
    assert [(changed.metric, changed.actual.verdict, changed.candidate.verdict) for changed in comparison.changed] == [
        (NEXT, Verdict.BREACHED, Verdict.MET)
    ]
