"""The catalogue as intake knows it from sla.config: a service it has not got, or a draft named by a requester, is
refused with the field named; and the rule of which service a ticket belongs to, which every reader shares."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from intake.catalogue import require_service
from intake.domain import InvalidCommand
from tests.builders import T0
from tests.unit.test_sla_clocks import config, policy
from ticketstream_shared.catalogue import ServiceCatalogue
from ticketstream_shared.contract import Role
from ticketstream_shared.contract.sla import ServiceChanged

DAY = timedelta(days=1)


def a_service(
    published: bool, effective: timedelta = -DAY, service_id: str = "vpn", categories: tuple[str, ...] = ()
) -> ServiceChanged:
    body = {
        "name": "VPN",
        "owner_team": "network",
        "targets": {"P2": {"first_response_minutes": 60, "resolution_minutes": 480}},
        "categories": list(categories),
        "published": published,
    }
    change = config(ServiceChanged, T0 + effective, service_id=service_id, data=body)
    assert isinstance(change, ServiceChanged)
    return change


def refusal(catalogue: ServiceCatalogue, role: Role, at=T0) -> str | None:
    try:
        require_service(catalogue, "vpn", role, at)
    except InvalidCommand as refused:
        assert refused.field_name == "service_id"
        return refused.message
    return None


def test_a_service_not_in_the_catalogue_is_refused_until_it_takes_effect() -> None:
    catalogue = ServiceCatalogue()
    catalogue.apply(policy("gold", 15, 60))  # the rest of sla.config is sla's alone
    assert refusal(catalogue, Role.ADMIN) == "no service 'vpn' in the catalogue"
    catalogue.apply(a_service(published=True, effective=DAY))
    assert refusal(catalogue, Role.REQUESTER) == "no service 'vpn' in the catalogue"  # tomorrow's
    assert refusal(catalogue, Role.REQUESTER, at=T0 + 2 * DAY) is None


@pytest.mark.parametrize("role", list(Role))
def test_a_draft_is_refused_to_requesters_only(role: Role) -> None:
    catalogue = ServiceCatalogue()
    catalogue.apply(a_service(published=False))
    expected = "service 'vpn' is not published" if role is Role.REQUESTER else None
    assert refusal(catalogue, role) == expected
    catalogue.apply(a_service(published=True))
    assert refusal(catalogue, role) is None


def test_a_change_read_twice_is_one_version() -> None:
    catalogue = ServiceCatalogue()
    change = a_service(published=True)
    assert catalogue.apply(change) and not catalogue.apply(change)
    assert catalogue.apply(change.model_copy(update={"event_id": uuid.uuid4()}))


def test_a_ticket_belongs_to_the_service_it_names_else_to_its_categorys_as_the_catalogue_stands() -> None:
    catalogue = ServiceCatalogue()
    catalogue.apply(a_service(published=True, categories=("network",)))
    catalogue.apply(a_service(published=False, service_id="remote", categories=("network", "remote")))  # a draft
    now = catalogue.in_force(T0)
    assert now.service_of("remote", "network") == "remote"  # drafts count: staff file tickets under them
    assert now.service_of(None, "network") == "remote"  # two claim it: the first by id keeps it, for every reader
    assert now.service_of("gone", "printing") is None
    assert now.service_of("gone", "remote") == "remote"  # a service this reader has not got: its category's
    # Tomorrow the VPN service takes the category away, and the catalogue stands anew from then on only.
    catalogue.apply(a_service(published=True, effective=DAY, categories=("network",)))
    catalogue.apply(a_service(published=False, effective=DAY, service_id="remote", categories=("remote",)))
    assert catalogue.in_force(T0).service_of(None, "network") == "remote"
    assert catalogue.in_force(T0 + 2 * DAY).service_of(None, "network") == "vpn"
    assert catalogue.in_force(T0 + 2 * DAY).category_owners == {"network": "vpn", "remote": "remote"}
