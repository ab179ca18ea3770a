"""Schemathesis generates requests from intake's own OpenAPI document, valid and not, and sends them over real
HTTP to an intake on the real broker: whatever comes in, the answer is never a server error. The same for the
forms of the request pages, which the document does not describe, from bodies hypothesis generates."""

from collections.abc import Iterator
from urllib.parse import quote, urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from intake.app import build_app
from intake.portal import ACTIONS
from intake.settings import IntakeSettings
from tests.conftest import EXAMPLES, FUZZ_EXAMPLES
from tests.integration.conftest import NEW_TICKET
from tests.keys import ACME_MANAGER, ADMIN, REQUESTER, TECHNICIAN, TEST_KEYS, bearer
from tests.serving import SERVICE_THREAD_USES_RANDOM, served

pytestmark = [pytest.mark.integration, SERVICE_THREAD_USES_RANDOM]

UNUSED = "the API keys come from tests.keys"
#: Every fuzz of this module: as many examples as the run asks for, its failures kept for replay.
FUZZED = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=EXAMPLES)
SCHEMA = schemathesis.openapi.from_dict(build_app(IntakeSettings(api_keys_file=UNUSED), TEST_KEYS).openapi()).include(
    path_regex="^/v1/"
)


@pytest.fixture(scope="module")
def intake_url(kafka_bootstrap: str) -> Iterator[str]:
    """An intake served by uvicorn on a real port, as in production (its presence watch off, as the in-process
    replicas' of conftest.running_intake: it would advertise their address)."""
    settings = IntakeSettings(kafka_bootstrap_servers=kafka_bootstrap, api_keys_file=UNUSED, peer_probe_seconds=0)
    app = build_app(settings, TEST_KEYS)
    with served(app, what="intake") as url:
        yield url


@SCHEMA.parametrize()
@FUZZED
def test_no_request_makes_intake_fail(case, intake_url):
    case.call_and_validate(base_url=intake_url, headers=bearer(ADMIN), checks=[not_a_server_error])


#: What the request pages' forms send (intake/portal.py): outside the API document, so generated here.
PAGE_FORMS = tuple(ACTIONS)
FORM_FIELDS = ("words", "internal", "status", "rating", "comment", "article_id", "minutes", "billable", "note",
               "request_key", "title", "description", "priority", "service_id")  # fmt: skip
form_bodies = st.one_of(
    st.dictionaries(st.sampled_from(FORM_FIELDS), st.text(max_size=40), max_size=6).map(urlencode).map(str.encode),
    st.binary(max_size=200),
)


@pytest.fixture(scope="module")
def request_page(intake_url: str) -> str:
    """The page of a request of alice's (REQUESTER), which the fuzz's forms are sent to."""
    created = httpx.post(f"{intake_url}/v1/tickets", json=NEW_TICKET, headers=bearer(REQUESTER))
    assert created.status_code == 201, created.text
    return f"{intake_url}/tickets/{created.json()['id']}"


@given(
    form=st.sampled_from(("new request", *PAGE_FORMS)), key=st.sampled_from((REQUESTER, TECHNICIAN)), body=form_bodies
)
@FUZZED
def test_no_form_sent_to_a_page_makes_intake_fail(form, key, body, request_page, intake_url):
    """Any body, to any of the pages' forms, from the requester or the desk: a refusal in words, never a 500."""
    target = f"{intake_url}/tickets" if form == "new request" else f"{request_page}/{form}"
    headers = {**bearer(key), "Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"}
    answer = httpx.post(target, content=body, headers=headers)
    assert answer.status_code < 500, (form, body, answer.text[:500])


@given(
    below=st.text(min_size=1, max_size=40),
    key=st.sampled_from((REQUESTER, TECHNICIAN, None)),
    method=st.sampled_from(("GET", "POST")),
)
@FUZZED
def test_no_page_asked_for_makes_intake_fail(below, key, method, request_page, intake_url):
    """Any path below /tickets (a request's id, a form's name, anything, below a request or not), asked by the
    requester, the desk or a browser with no key: a page or a refusal, never a 500."""
    target = f"{intake_url}/tickets/{quote(below, safe='/')}"
    headers = {**(bearer(key) if key else {}), "Sec-Fetch-Site": "same-origin"}
    answer = httpx.request(method, target, headers=headers)
    also_below_a_request = httpx.request(method, f"{request_page}/{quote(below, safe='/')}", headers=headers)
    assert answer.status_code < 500, (method, target, answer.text[:500])
    assert also_below_a_request.status_code < 500, (method, below, also_below_a_request.text[:500])


@given(
    asked=st.dictionaries(st.sampled_from(("client_id", "priority", "other")), st.text(max_size=40), max_size=3),
    key=st.sampled_from((ADMIN, TECHNICIAN, ACME_MANAGER)),
)
@FUZZED
def test_no_filter_of_the_desks_open_work_makes_intake_fail(asked, key, intake_url):
    """The desk's open work narrowed to anything, by a key of no client or of one: the work, or a refusal in words."""
    answer = httpx.get(f"{intake_url}/tickets", params=asked, headers=bearer(key))
    assert answer.status_code in (200, 403, 422), (asked, answer.text[:500])
