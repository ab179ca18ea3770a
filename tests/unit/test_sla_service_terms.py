"""A published service's promise times the tickets of its categories, unless a policy naming the ticket's client,
tier or category says otherwise; policies for any ticket (the built-in default among them) come after it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sla import snapshots
from sla.agreements import Agreements
from sla.timekeeper import Timekeeper
from sla.whatif import in_force
from tests.builders import T0, a_ticket_created
from tests.unit.test_sla_clocks import HOUR, MINUTE, Story, agreements_with, config, policy
from ticketstream_shared.contract.sla import CalendarChanged, ServiceChanged, SlaConfigEvent, SlaMetric

OFFICE = {
    "timezone": "UTC",
    "week": {day: [{"start": "08:00", "end": "17:00"}] for day in ("monday", "tuesday", "wednesday", "thursday")},
}


def service(published: bool = True, at: Any = T0 - HOUR, **data: Any) -> SlaConfigEvent:
    body = {
        "name": "Hardware",
        "owner_team": "field-service",
        "categories": ["hardware"],  # the category of tests.builders' tickets
        "targets": {"P2": {"first_response_minutes": 30, "resolution_minutes": 600}},
        "published": published,
        **data,
    }
    return config(ServiceChanged, at, service_id="hardware", data=body)


def started(agreements: Agreements, priority: str = "P2") -> dict[str, tuple[str, int, Any]]:
    """Per metric of a ticket opened at T0: (the id its terms give, their version, the deadline)."""
    story = Story(agreements, priority=priority)
    return {
        event.data.metric.value: (event.data.policy_id, event.data.policy_version, event.data.deadline)
        for event in story.out
    }


def test_a_published_service_times_its_categories_before_a_policy_for_any_ticket() -> None:
    clocks = started(agreements_with(service()))
    assert clocks == {
        "first_response": ("service:hardware", 1, T0 + 30 * MINUTE),
        "resolution": ("service:hardware", 1, T0 + 10 * HOUR),
    }


def test_the_service_calendar_counts_its_working_time() -> None:
    office = config(CalendarChanged, calendar_id="office", data=OFFICE)
    clocks = started(agreements_with(office, service(calendar_id="office")))
    # T0 is Monday 2 March 2026, 09:00 UTC: 8 of the 10 working hours that day, the rest from 08:00 on Tuesday
    assert clocks["resolution"] == ("service:hardware", 1, T0 + timedelta(hours=25))


def test_a_policy_naming_the_client_tier_or_category_comes_before_the_service() -> None:
    for match in ({"client_ids": ["acme"]}, {"categories": ["hardware"]}, {"tiers": ["standard"]}):
        clocks = started(agreements_with(service(), policy("acme-gold", 15, 120, match=match)))
        assert clocks["first_response"][0] == "acme-gold", match
    for_any_p2 = policy("any-p2", 15, 120, match={"priorities": ["P2"]})
    assert started(agreements_with(service(), for_any_p2))["first_response"][0] == "service:hardware"


def test_a_ticket_naming_a_service_is_timed_by_it_whatever_its_category() -> None:
    vpn = config(
        ServiceChanged,
        service_id="vpn",
        data={
            "name": "VPN",
            "owner_team": "network",
            "categories": ["vpn"],
            "targets": {"P2": {"first_response_minutes": 45, "resolution_minutes": 300}},
            "published": True,
        },
    )
    keeper = Timekeeper(agreements_with(service(), vpn))
    named = keeper.handle(a_ticket_created(service_id="vpn"), 0)  # its category, hardware, is another service's
    assert {(event.data.policy_id, event.data.deadline) for event in named} == {
        ("service:vpn", T0 + 45 * MINUTE),
        ("service:vpn", T0 + 5 * HOUR),
    }
    # A service this replica has not read (yet): the category's service, as for a ticket naming none.
    unknown = keeper.handle(a_ticket_created(service_id="not-read-yet"), 0)
    assert {event.data.policy_id for event in unknown} == {"service:hardware"}
    restored = keeper.ticket(named[0].ticket_id)
    assert restored is not None and restored.facts.service_id == "vpn"
    assert snapshots.decode(snapshots.encode(restored), keeper.agreements) == restored


def test_a_draft_or_a_priority_the_service_does_not_promise_falls_to_the_policies() -> None:
    assert started(agreements_with(service(published=False)))["first_response"][0] == "default"
    assert started(agreements_with(service()), priority="P1")["first_response"][0] == "default"


def test_a_service_changed_live_retimes_its_running_clocks() -> None:
    story = Story(agreements_with(service()))
    story.keeper.record_change(
        service(at=T0 + 20 * MINUTE, targets={"P2": {"first_response_minutes": 90, "resolution_minutes": 600}})
    )
    retimed = story.tick(T0 + 20 * MINUTE)  # before its first warning (at 22.5 minutes)
    assert [(event.event_type, event.data.policy_id, event.data.policy_version) for event in retimed] == [
        ("sla.retargeted", "service:hardware", 2),
        ("sla.retargeted", "service:hardware", 2),
    ]
    assert [event.data.deadline for event in retimed] == [T0 + 90 * MINUTE, T0 + 10 * HOUR]


def test_a_what_if_replays_under_the_services_as_the_clocks_ran() -> None:
    agreements = agreements_with(service())
    facts = Story(agreements).state.facts
    replayed = in_force(agreements).terms_for(facts, SlaMetric.FIRST_RESPONSE, T0)
    assert replayed == agreements.terms_for(facts, SlaMetric.FIRST_RESPONSE, T0)
    assert replayed is not None and replayed.policy_id == "service:hardware"


def test_a_policy_may_name_services_and_then_comes_before_their_own_promise() -> None:
    for_the_service = policy("hardware-gold", 15, 120, match={"service_ids": ["hardware"]})
    assert started(agreements_with(service(), for_the_service))["first_response"][0] == "hardware-gold"
    assert started(agreements_with(service(published=False), for_the_service))["first_response"][0] == "hardware-gold"
    for_another = policy("printing-gold", 15, 120, match={"service_ids": ["printing"]})
    assert started(agreements_with(service(), for_another))["first_response"][0] == "service:hardware"
    assert started(agreements_with(for_another))["first_response"][0] == "default", "a ticket of no service"
