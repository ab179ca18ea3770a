"""Schemathesis over the OpenAPI documents of sla, assignment, reporting and notify, as test_intake_fuzz.py does for
intake: requests generated from each service's own document, valid and not, sent over real HTTP to the service served by
uvicorn on the session's broker (reporting on a chDB of its own). Whatever comes in, the answer is never a server
error. Generation is random on every run; a failing example is kept in tests/hypothesis-examples and replayed first.

Per service: every operation with the admin key; the reads with a key scoped to one client (acme's requester, or
for reporting, whose reports refuse requesters, acme's manager); and where one request's success gives another's
input a meaning (a calendar that exists, a technician's team), workflows following OpenAPI links added here: FastAPI
writes none, and those schemathesis infers point at response fields these documents do not describe. Then, each
with its exact requests, regression tests of the server errors found by the fuzz or beside it.

What the fuzz writes stays on the session's broker, where every later test reads it: random ids, and the policies
it writes cover only a client of its own (see `contained`), whose tickets the sla under fuzz times.
"""

from __future__ import annotations

import asyncio
import copy
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from assignment.app import build_app as build_assignment
from assignment.settings import AssignmentSettings
from deploy.kafka.launcher import free_ports
from notify.app import build_app as build_notify
from notify.settings import NotifySettings
from reporting.app import build_app as build_reporting
from reporting.settings import ReportingSettings
from sla.app import build_app as build_sla
from sla.settings import SlaSettings
from tests.builders import T0, a_ticket_created
from tests.conftest import EXAMPLES, FUZZ_EXAMPLES
from tests.keys import ACME_MANAGER, ADMIN, REQUESTER, TEST_KEYS, bearer
from tests.polling import eventually
from tests.serving import SERVICE_THREAD_USES_RANDOM, served
from ticketstream_shared.business_time import HORIZON
from ticketstream_shared.contract import TicketCreated, encode
from ticketstream_shared.contract.topics import TICKETS_EVENTS
from ticketstream_shared.runtime.kafka import make_producer
from ticketstream_shared.sealing import write_key

pytestmark = [pytest.mark.integration, SERVICE_THREAD_USES_RANDOM]

UNUSED = Path("the API keys come from tests.keys")
#: Explicit links only (see the module docstring).
CONFIG = SchemathesisConfig.from_dict({"phases": {"stateful": {"inference": {"algorithms": []}}}})
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=EXAMPLES)
#: A workflow of a few requests per example.
WORKFLOWS = settings(FUZZ, stateful_step_count=6)

RUN = uuid.uuid4().hex[:8]
#: The only client the policies written by the fuzz cover, and its tickets (one per priority), timed by them.
FUZZ_CLIENT = "schemathesis-fuzz-only"
FUZZ_TICKETS = {priority: f"fuzz-{RUN}-{priority}" for priority in ("P1", "P2", "P3", "P4")}
#: Calendars put before the fuzz starts, for its policies, agreements and what-ifs to name (a calendar it generates
#: is seldom valid: a random string is no IANA zone): office hours with holidays, a night shift at +12:45/+13:45,
#: and one minute a week, where a policy's targets (up to 10 million minutes) reach far into the future.
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
CALENDARS = {
    "Office": {
        "timezone": "Europe/Berlin",
        "week": {day: [{"start": "09:00", "end": "17:00"}] for day in WEEKDAYS},
        "holidays": ["2026-12-24", "2026-12-25", "2026-12-31"],
    },
    "Nights": {"timezone": "Pacific/Chatham", "week": {day: [{"start": "22:00", "end": "06:00"}] for day in WEEKDAYS}},
    "Sliver": {"timezone": "Australia/Lord_Howe", "week": {"sunday": [{"start": "03:00", "end": "03:01"}]}},
}
CALENDAR_IDS = {name: f"fuzz-{RUN}-{name.lower()}" for name in CALENDARS}


# --- the documents, with links ----------------------------------------------------------------------------------


def operation(method: str, path: str) -> str:
    """An OpenAPI link's operationRef for `method path`."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def link(method: str, path: str, *, parameters: dict[str, str] | None = None, body: Any = None) -> dict[str, Any]:
    """A link to `method path`; `body` is merged into the body generated for it."""
    definition: dict[str, Any] = {"operationRef": operation(method, path)}
    if parameters:
        definition["parameters"] = parameters
    if body is not None:
        definition["requestBody"] = body
    return definition


Links = dict[tuple[str, str], dict[str, dict[str, Any]]]


def load(document: dict[str, Any], links: Links | None = None) -> schemathesis.openapi.OpenApiSchema:
    """The document with `links` on the 200 answer of each (method, path)."""
    document = copy.deepcopy(document)
    for (method, path), named in (links or {}).items():
        document["paths"][path][method]["responses"]["200"]["links"] = named
    return schemathesis.openapi.from_dict(document, config=CONFIG)


def api(schema: schemathesis.openapi.OpenApiSchema, **only: Any) -> schemathesis.openapi.OpenApiSchema:
    """The service's own operations (/healthz and the like are every service's), or those of them matching `only`."""
    return schema.include(path_regex="^/v1/", **only)


CALENDAR, POLICY = "/v1/sla/calendars/{calendar_id}", "/v1/sla/policies/{policy_id}"
CLIENT, TICKET, WHAT_IF = "/v1/sla/clients/{client_id}", "/v1/sla/tickets/{ticket_id}", "/v1/sla/what-if"
SAME_CALENDAR = {"path.calendar_id": "$request.path.calendar_id"}
SAME_POLICY = {"path.policy_id": "$request.path.policy_id"}
FUZZ_AGREEMENT = {"path.client_id": FUZZ_CLIENT}
#: A past month holding the fuzz's tickets and those of every test built at T0.
PERIOD = {"from": (T0 - timedelta(days=1)).isoformat(), "to": (T0 + timedelta(days=30)).isoformat()}
#: The policy just put, as a what-if's candidate.
AS_PUT = {"id": "$request.path.policy_id", "targets": "$request.body#/targets", "match": "$request.body#/match"}


def on_calendar(name: str) -> dict[str, Any]:
    """A what-if's candidate: the policy just put on one of the fuzz's calendars, which is a candidate too (the
    calendar itself is younger than the period)."""
    calendar_id = CALENDAR_IDS[name]
    return {"policy": {**AS_PUT, "calendar_id": calendar_id}, "calendar": {"id": calendar_id, **CALENDARS[name]}}


SLA = load(
    build_sla(SlaSettings(api_keys_file=UNUSED), TEST_KEYS).openapi(),
    {
        ("put", CALENDAR): {
            "ReadCalendar": link("get", CALENDAR, parameters=SAME_CALENDAR),
            "PolicyOnCalendar": link("put", POLICY, body={"calendar_id": "$request.path.calendar_id"}),
            "AgreementOnCalendar": link("put", CLIENT, body={"calendar_id": "$request.path.calendar_id"}),
            "FuzzAgreementOnCalendar": link(
                "put", CLIENT, parameters=FUZZ_AGREEMENT, body={"calendar_id": "$request.path.calendar_id"}
            ),
            "WhatIfInsteadOfCalendar": link(
                "post", WHAT_IF, body={**PERIOD, "candidate": {"calendar": {"id": "$request.path.calendar_id"}}}
            ),
        },
        ("put", POLICY): {
            "ReadPolicy": link("get", POLICY, parameters=SAME_POLICY),
            "WhatIfPolicy": link("post", WHAT_IF, body={**PERIOD, "candidate": {"policy": AS_PUT}}),
            **{
                f"ReadTicket{priority}": link("get", TICKET, parameters={"path.ticket_id": ticket})
                for priority, ticket in FUZZ_TICKETS.items()
            },
            **{
                f"{name}Policy": link("put", POLICY, parameters=SAME_POLICY, body={"calendar_id": calendar_id})
                for name, calendar_id in CALENDAR_IDS.items()
            },
            **{
                f"{name}Agreement": link("put", CLIENT, parameters=FUZZ_AGREEMENT, body={"calendar_id": calendar_id})
                for name, calendar_id in CALENDAR_IDS.items()
            },
            **{
                f"{name}WhatIf": link("post", WHAT_IF, body={**PERIOD, "candidate": on_calendar(name)})
                for name in CALENDARS
            },
        },
        ("put", CLIENT): {
            "ReadAgreement": link("get", CLIENT, parameters={"path.client_id": "$request.path.client_id"}),
        },
    },
)

TECHNICIAN, TEAM = "/v1/technicians/{technician_id}", "/v1/routing/teams/{team}"
CATEGORY, ASSIGNMENT = "/v1/routing/categories/{category}", "/v1/assignments/{ticket_id}"
SAME_TECHNICIAN = {"path.technician_id": "$request.path.technician_id"}
ITS_TEAM = {"path.team": "$request.body#/team"}
#: No link leaves a POST: schemathesis would start every workflow there (a POST "creates"), never at the PUTs.
ASSIGNMENT = load(
    build_assignment(AssignmentSettings(api_keys_file=UNUSED), TEST_KEYS).openapi(),
    {
        ("put", TECHNICIAN): {
            "ReadTechnician": link("get", TECHNICIAN, parameters=SAME_TECHNICIAN),
            "ChangeShift": link("post", f"{TECHNICIAN}/shift", parameters=SAME_TECHNICIAN),
            "ListTeam": link("get", "/v1/technicians", parameters={"query.team": "$request.body#/team"}),
            "ReadTeam": link("get", TEAM, parameters=ITS_TEAM),
            "ChooseStrategy": link("put", TEAM, parameters=ITS_TEAM),
            "RouteToTeam": link("put", CATEGORY, body={"team": "$request.body#/team"}),
            "AssignTo": link("post", ASSIGNMENT, body={"technician_id": "$request.path.technician_id"}),
        },
        ("put", CATEGORY): {
            "ReadRule": link("get", CATEGORY, parameters={"path.category": "$request.path.category"}),
            "ReadTeam": link("get", TEAM, parameters=ITS_TEAM),
        },
        ("put", TEAM): {
            "ReadTeam": link("get", TEAM, parameters={"path.team": "$request.path.team"}),
            "ListTeam": link("get", "/v1/technicians", parameters={"query.team": "$request.path.team"}),
        },
    },
)

REPORTING = load(build_reporting(ReportingSettings(api_keys_file=UNUSED), TEST_KEYS).openapi())
#: notify seals webhook secrets with a key it reads when built (here, on import); removed when the run ends.
NOTIFY_KEYS = tempfile.TemporaryDirectory(prefix="notify-fuzz-")
NOTIFY_KEY = write_key(Path(NOTIFY_KEYS.name) / "secrets.key")
WEBHOOK, PERSON = "/v1/notify/webhooks/{webhook_id}", "/v1/notify/people/{person_id}"
SERVICE = "/v1/catalog/services/{service_id}"
SAME_WEBHOOK = {"path.webhook_id": "$request.path.webhook_id"}
NOTIFY = load(
    build_notify(NotifySettings(api_keys_file=UNUSED, notify_secrets_key_file=NOTIFY_KEY), TEST_KEYS).openapi(),
    {
        ("put", WEBHOOK): {
            "ReadWebhook": link("get", WEBHOOK, parameters=SAME_WEBHOOK),
            "ItsDeliveries": link("get", f"{WEBHOOK}/deliveries", parameters=SAME_WEBHOOK),
            "ListWebhooks": link("get", "/v1/notify/webhooks"),
            "ChangeWebhook": link("put", WEBHOOK, parameters=SAME_WEBHOOK),
            "RemoveWebhook": link("delete", WEBHOOK, parameters=SAME_WEBHOOK),
        },
        ("put", PERSON): {
            "ReadPerson": link("get", PERSON, parameters={"path.person_id": "$request.path.person_id"}),
        },
    },
)


# --- calling ----------------------------------------------------------------------------------------------------


def contained(case: Case) -> Case:
    """sla.config is read by every sla and reporting of the session: a policy the fuzz writes covers the fuzz's own
    client only, where one with an empty match and rank 0 would time every later test's tickets; a service names
    categories of the fuzz's own. The rest of the body stays as generated (a match that is not an object is left to
    be refused)."""
    if case.operation.method.upper() == "PUT" and case.operation.path == POLICY and isinstance(case.body, dict):
        match = case.body.get("match", {})
        if isinstance(match, dict):
            case.body = {**case.body, "match": {**match, "client_ids": [FUZZ_CLIENT]}}
    # A published service times the tickets of its categories: those the fuzz writes are categories of its own.
    service_put = case.operation.method.upper() == "PUT" and case.operation.path == SERVICE
    if service_put and isinstance(case.body, dict) and isinstance(case.body.get("categories"), list):
        case.body = {**case.body, "categories": [f"fuzz-{RUN}-{i}" for i, _ in enumerate(case.body["categories"])]}
    # notify.config too is read by every notify of the session: the webhooks and people the fuzz writes hear of the
    # fuzz's own client only, so no later test's events are delivered to them.
    notify_put = case.operation.method.upper() == "PUT" and case.operation.path in (WEBHOOK, PERSON)
    if notify_put and isinstance(case.body, dict):
        case.body = {**case.body, "client_id": FUZZ_CLIENT}
        if case.operation.path == PERSON:
            case.body["role"] = "requester"
    return case


def never_a_server_error(case: Case, url: str, key: str) -> None:
    contained(case).call_and_validate(base_url=url, headers=bearer(key), checks=[not_a_server_error])


#: What a workflow's requests name in their bodies and whose answer depends on its existing: a policy's calendar, a
#: category's team, a person's address (held by another person, it is refused).
NAMING_FIELDS = ("calendar_id", "policy_id", "team", "technician_id", "email")


class Workflows:
    """Mixed into a schema's state machine: each step as the admin against `base_url`, checked for server errors
    only (the documents describe no answer beyond its status code).

    Hypothesis requires an example's steps to depend on its own draws alone (else FlakyStrategyDefinition): the links
    a step may follow are those of the PUTs that answered 200, and a PUT's answer depends on what exists already (a
    policy on a calendar some earlier example put, a person's address held by an earlier example's person, a known
    webhook PUT without its secret). So each example names things of its own: the ids in its paths and the names in
    `NAMING_FIELDS` are given a suffix per example, once (a link carries a name given it already), and stay as valid
    or not as they were generated. The fuzz's own calendars, tickets and client keep their names."""

    base_url: ClassVar[str]
    suffix: str

    def setup(self) -> None:
        self.suffix = f"-{uuid.uuid4().hex[:8]}"

    def before_call(self, case: Case) -> None:
        contained(case)
        for name, value in (case.path_parameters or {}).items():
            case.path_parameters[name] = self._own(value)
        if isinstance(case.body, dict):
            for name in NAMING_FIELDS:
                if isinstance(value := case.body.get(name), str):
                    local, at, domain = value.rpartition("@") if name == "email" else ("", "", value)
                    case.body[name] = f"{self._own(local)}{at}{domain}" if at else self._own(value)

    def _own(self, name: Any) -> Any:
        shared = not isinstance(name, str) or name == FUZZ_CLIENT or name.startswith(f"fuzz-{RUN}-")
        return name if shared or name.endswith(self.suffix) else name + self.suffix

    def get_call_kwargs(self, case: Case) -> dict[str, Any]:
        return {"base_url": self.base_url, "headers": bearer(ADMIN)}

    def validate_response(self, response: Any, case: Case, additional_checks: Any = None, **kwargs: Any) -> None:
        case.validate_response(response, checks=[not_a_server_error], transport_kwargs=kwargs)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _publish(bootstrap: str, tickets: list[TicketCreated]) -> None:
    """The tickets on tickets.events, as intake writes them."""
    producer = make_producer(SlaSettings(kafka_bootstrap_servers=bootstrap, api_keys_file=UNUSED), "test-intake")
    await producer.start()
    try:
        for ticket in tickets:
            await producer.send_and_wait(TICKETS_EVENTS, encode(ticket), key=ticket.ticket_id.encode())
    finally:
        await producer.stop()


def publish(bootstrap: str, *tickets: TicketCreated) -> None:
    asyncio.run(_publish(bootstrap, list(tickets)))


def timed(url: str, *ticket_ids: str) -> bool:
    """Whether the sla at `url` has clocks for each of the tickets."""
    return all(
        httpx.get(f"{url}/v1/sla/tickets/{ticket_id}", headers=bearer(ADMIN)).status_code == 200
        for ticket_id in ticket_ids
    )


# --- sla --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="class")
def sla_url(kafka_bootstrap: str) -> Iterator[str]:
    """An sla with the fuzz's calendars, and its tickets (created at T0 under the built-in policy) among its clocks."""
    (port,) = free_ports(1)  # its own URL: where other replicas would send the requests for its tickets
    sla = SlaSettings(
        kafka_bootstrap_servers=kafka_bootstrap, api_keys_file=UNUSED, consumer_group=unique("sla-fuzz"), http_port=port
    )
    publish(kafka_bootstrap, *(a_ticket_created(ticket, FUZZ_CLIENT, priority=p) for p, ticket in FUZZ_TICKETS.items()))
    with served(build_sla(sla, TEST_KEYS), port=port, what="sla") as url:
        for name, calendar in CALENDARS.items():
            put = httpx.put(f"{url}/v1/sla/calendars/{CALENDAR_IDS[name]}", json=calendar, headers=bearer(ADMIN))
            assert put.status_code == 200, put.text
        eventually(lambda: timed(url, *FUZZ_TICKETS.values()), timeout_s=60, what="the fuzz's tickets timed")
        yield url


class TestSla:
    @api(SLA).parametrize()
    @FUZZ
    def test_no_request_makes_it_fail(self, case: Case, sla_url: str) -> None:
        never_a_server_error(case, sla_url, ADMIN)

    @api(SLA, method="GET").parametrize()
    @FUZZ
    def test_no_read_by_a_requester_makes_it_fail(self, case: Case, sla_url: str) -> None:
        never_a_server_error(case, sla_url, REQUESTER)

    def test_no_workflow_makes_it_fail(self, sla_url: str) -> None:
        class SlaWorkflows(Workflows, api(SLA).as_state_machine()):  # type: ignore[misc]
            base_url = sla_url

        SlaWorkflows.run(settings=WORKFLOWS)

    # --- what the fuzz found

    def test_a_directory_of_the_time_zone_database_is_no_time_zone(self, sla_url: str) -> None:
        """Found probing beside the fuzz: ZoneInfo("America") raises IsADirectoryError, and a name too long for the
        file system an OSError, which the calendar's validation let through: PUT answered 500."""
        calendar = f"{sla_url}/v1/sla/calendars/fuzz-{RUN}-zone"
        for timezone in ("America", "Europe" * 50):
            put = httpx.put(calendar, json={"timezone": timezone, "always_open": True}, headers=bearer(ADMIN))
            assert put.status_code == 422, put.text
            assert [error["field"] for error in put.json()["errors"]] == ["timezone"], put.text
        candidate = {"calendar": {"id": "default", "timezone": "America", "always_open": True}}
        what_if = httpx.post(f"{sla_url}{WHAT_IF}", json={**PERIOD, "candidate": candidate}, headers=bearer(ADMIN))
        assert what_if.status_code == 422, what_if.text
        assert [error["field"] for error in what_if.json()["errors"]] == ["candidate.calendar.timezone"]

    def test_a_target_the_calendar_cannot_hold_within_a_century_leaves_sla_running(
        self, sla_url: str, kafka_bootstrap: str
    ) -> None:
        """The fuzz's find: a policy of 10 million minutes (the largest target) on a calendar of one minute a week.
        Re-timing a ticket's clocks counted working time day by day for many seconds, the event loop blocked, until
        an OverflowError past the year 9999 stopped the sla service (SIGTERM to itself: the workflow test's whole
        process). Now the deadline is a century after the change (business_time.HORIZON), and sla answers."""
        client, ticket = f"century-{RUN}", f"century-{RUN}-ticket"
        publish(kafka_bootstrap, a_ticket_created(ticket, client))
        eventually(lambda: timed(sla_url, ticket), timeout_s=30, what="the ticket timed")
        policy_id = f"fuzz-{RUN}-century"
        targets = {"first_response_minutes": 10_000_000, "resolution_minutes": 10_000_000}
        policy = {
            "rank": 0,
            "match": {"client_ids": [client]},
            "calendar_id": CALENDAR_IDS["Sliver"],
            "targets": dict.fromkeys(FUZZ_TICKETS, targets),
        }
        put = httpx.put(f"{sla_url}/v1/sla/policies/{policy_id}", json=policy, headers=bearer(ADMIN))
        assert put.status_code == 200, put.text
        effective_at = datetime.fromisoformat(put.json()["versions"][-1]["effective_at"])

        def clocks_under_the_policy() -> list[dict[str, Any]]:
            answer = httpx.get(f"{sla_url}/v1/sla/tickets/{ticket}", headers=bearer(ADMIN), timeout=30)
            assert answer.status_code == 200, answer.text
            clocks = answer.json()["clocks"]
            return clocks if all(clock["policy"]["id"] == policy_id for clock in clocks) else []

        clocks = eventually(clocks_under_the_policy, timeout_s=30, what="the clocks re-timed")
        assert {datetime.fromisoformat(clock["target_at"]) for clock in clocks} == {effective_at + HORIZON}
        assert httpx.get(f"{sla_url}/readyz").status_code == 200


# --- assignment -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="class")
def assignment_url(kafka_bootstrap: str) -> Iterator[str]:
    assignment = AssignmentSettings(
        kafka_bootstrap_servers=kafka_bootstrap, api_keys_file=UNUSED, consumer_group=unique("assignment-fuzz")
    )
    with served(build_assignment(assignment, TEST_KEYS), what="assignment") as url:
        yield url


class TestAssignment:
    @api(ASSIGNMENT).parametrize()
    @FUZZ
    def test_no_request_makes_it_fail(self, case: Case, assignment_url: str) -> None:
        never_a_server_error(case, assignment_url, ADMIN)

    @api(ASSIGNMENT, method="GET").parametrize()
    @FUZZ
    def test_no_read_by_a_requester_makes_it_fail(self, case: Case, assignment_url: str) -> None:
        never_a_server_error(case, assignment_url, REQUESTER)

    def test_no_workflow_makes_it_fail(self, assignment_url: str) -> None:
        class AssignmentWorkflows(Workflows, api(ASSIGNMENT).as_state_machine()):  # type: ignore[misc]
            base_url = assignment_url

        AssignmentWorkflows.run(settings=WORKFLOWS)


# --- reporting --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="class")
def reporting_url(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A reporting service on a chDB of its own."""
    reporting = ReportingSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        api_keys_file=UNUSED,
        consumer_group=unique("reporting-fuzz"),
        batch_max_wait_seconds=0.2,
        chdb_path=tmp_path_factory.mktemp("chdb"),
    )
    with served(build_reporting(reporting, TEST_KEYS), what="reporting") as url:
        yield url


class TestReporting:
    @api(REPORTING).parametrize()
    @FUZZ
    def test_no_request_makes_it_fail(self, case: Case, reporting_url: str) -> None:
        never_a_server_error(case, reporting_url, ADMIN)

    @api(REPORTING).parametrize()
    @FUZZ
    def test_no_report_asked_by_a_clients_manager_makes_it_fail(self, case: Case, reporting_url: str) -> None:
        never_a_server_error(case, reporting_url, ACME_MANAGER)


# --- notify -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="class")
def notify_url(kafka_bootstrap: str) -> Iterator[str]:
    notify = NotifySettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        api_keys_file=UNUSED,
        consumer_group=unique("notify-fuzz"),
        notify_secrets_key_file=NOTIFY_KEY,
    )
    with served(build_notify(notify, TEST_KEYS), what="notify") as url:
        yield url


class TestNotify:
    @api(NOTIFY).parametrize()
    @FUZZ
    def test_no_request_makes_it_fail(self, case: Case, notify_url: str) -> None:
        never_a_server_error(case, notify_url, ADMIN)

    @api(NOTIFY, method="GET").parametrize()
    @FUZZ
    def test_no_read_by_a_requester_makes_it_fail(self, case: Case, notify_url: str) -> None:
        never_a_server_error(case, notify_url, REQUESTER)

    def test_no_workflow_makes_it_fail(self, notify_url: str) -> None:
        class NotifyWorkflows(Workflows, api(NOTIFY).as_state_machine()):  # type: ignore[misc]
            base_url = notify_url

        NotifyWorkflows.run(settings=WORKFLOWS)

    # --- what the fuzz found

    def test_a_webhook_url_that_is_no_url_is_refused_by_name(self, notify_url: str) -> None:
        """Found while describing a webhook's URL in notify's document (http or https, a host, a path), for the fuzz
        to generate such URLs: a host that is no address literal ("[::1"), a port that is no number or out of range,
        a host that is no name ("a b"), each answered 500 (the desk's address check, or the URL's own validation,
        raised past the refusals)."""
        no_urls = ("https://[::1/hook", "https://hooks.example.com:abc/", "https://example.com:99999/", "http://a b/")
        for url in no_urls:
            body = {"url": url, "event_types": ["*"], "client_id": FUZZ_CLIENT, "secret": "s" * 16}
            put = httpx.put(f"{notify_url}/v1/notify/webhooks/{unique('url')}", json=body, headers=bearer(ADMIN))
            assert put.status_code == 422, put.text
            assert [error["field"] for error in put.json()["errors"]] == ["url"], put.text
