"""The manager dashboard in a real browser: headless Chromium (Debian's package, driven by Playwright) opens it,
clicks to the hours per client, and finds the figures the API gives; a screenshot is kept in pytest's tmp dir. The
same browser then reads the service's API page, offline.

The reporting service runs as its own process against the session's broker, with a help desk's week published.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.integration.test_reporting_crash import reporting_process
from tests.integration.test_reporting_rebuild import publish
from tests.integration.test_reporting_reports import week
from tests.polling import eventually
from ticketstream_shared.contract import Envelope

pytestmark = pytest.mark.e2e

#: Debian's chromium package; the Makefile's install target installs it.
CHROMIUM = Path("/usr/bin/chromium")
RUN = uuid.uuid4().hex[:8]
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}
#: The columns of the dashboard's hours table, as the API names them.
HOURS_COLUMNS = ("client_id", "hours", "billable_hours", "business_hours", "outside_business_hours", "tickets",
                 "worklogs")  # fmt: skip


def chromium() -> Path:
    """The browser, or a failure that says how to get it: a missing browser must not pass for a skipped test."""
    found = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or "/nonexistent")
    if not found.exists():
        pytest.fail(
            "Chromium is missing: the dashboard test drives Debian's chromium package. Install it with "
            "`apt-get install -y chromium` (make install does it on Debian).",
            pytrace=False,
        )
    return found


def weeks_ends(first: date, last: date) -> list[date]:
    """Every Sunday from `first` to `last`, and `last`."""
    days = (first + timedelta(days=n) for n in range((last - first).days + 1))
    return [*(day for day in days if day.isoweekday() == 7), last]


def of_this_run(event: Envelope) -> Envelope:
    return event.model_copy(update={"client_id": f"{event.client_id}-{RUN}", "ticket_id": f"{event.ticket_id}-{RUN}"})


def test_hours_per_client_are_one_click_away_and_match_the_api(kafka_bootstrap: str, tmp_path: Path) -> None:
    browser_path = chromium()
    asyncio.run(publish(kafka_bootstrap, [of_this_run(event) for event in week()]))
    with reporting_process(kafka_bootstrap, tmp_path) as service:

        def api_rows() -> list[tuple[str | float, ...]]:
            rows = service.get("/v1/reports/hours-per-client", **MARCH, business_hours="true").json()["rows"]
            return [tuple(row[column] for column in HOURS_COLUMNS) for row in rows]

        expected = eventually(lambda: [row for row in api_rows() if RUN in row[0]], timeout_s=60, what="our hours")
        assert expected[0] == (f"acme-{RUN}", 4.0, 2.0, 2.5, 1.5, 2, 3)

        with sync_playwright() as playwright:
            # The pages "of another origin" below are served by the test (page.route), which Chromium takes for the
            # public internet and would keep from a local address whatever the service answers.
            browser = playwright.chromium.launch(executable_path=str(browser_path), headless=True,
                                                 args=["--disable-features=LocalNetworkAccessChecks"])  # fmt: skip
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            assert page.goto(f"{service.url}/dashboard").status == 401, "no key, no dashboard"
            page.fill("#key", "not-a-key")
            page.click("#sign-in")
            assert page.inner_text("body").count("not one that may read") == 1
            page.fill("#key", service.manager_key)
            page.click("#sign-in")
            page.wait_for_selector("#show-hours")
            page.fill("#from", MARCH["from"])
            page.fill("#to", MARCH["to"])
            page.click("#show-hours")
            page.wait_for_selector("body[data-shown=hours]")
            page.wait_for_selector("#chart .main-svg")  # plotly.js, served by the service itself, drew the chart
            shown = [
                (client.inner_text(), *(float(cell.inner_text()) for cell in figures))
                for client, *figures in (
                    row.query_selector_all("td") for row in page.query_selector_all("#figures tbody tr")
                )
            ]
            page.screenshot(path=str(tmp_path / "dashboard-hours-per-client.png"), full_page=True)
            for view in ("sla", "backlog", "response", "services"):
                page.click(f"#show-{view}")
                page.wait_for_selector(f"body[data-shown={view}]")
            assert page.inner_text("#status") == ""
            page.fill("#from", "2026-01-01")
            page.fill("#to", "2027-12-31")  # more days than a backlog lists: it is told at the end of each week
            page.click("#show-backlog")
            page.wait_for_function("document.querySelector('#status').textContent === ''")
            told = {cell.inner_text() for cell in page.query_selector_all("#figures td[data-column=day]")}
            assert told and told == {str(day) for day in weeks_ends(date(2026, 1, 1), date(2027, 12, 31))}
            page.fill("#from", "2027-12-31")
            page.fill("#to", "2026-01-01")  # a range the wrong way round: the manager is told which field, and why
            page.click("#show-sla")
            page.wait_for_function("document.querySelector('#status').textContent.startsWith('422')")
            assert "to: Value error, must not be before from (2027-12-31)" in page.inner_text("#status")
            # A page of another origin on the same site (another port of this host, whose requests carry the
            # SameSite=Strict cookie) cannot sign the browser in with a key of its choosing: Chromium tells the
            # service where the form came from.
            elsewhere = "http://127.0.0.1:9/forge"
            forging = (f'<form method="post" action="{service.url}/dashboard/session"><input name="key" '
                       f'value="{service.manager_key}"></form><script>document.forms[0].submit()</script>')  # fmt: skip
            page.route(elsewhere, lambda route: route.fulfill(content_type="text/html", body=forging))
            with page.expect_response(f"{service.url}/dashboard/session") as forged:
                page.goto(elsewhere)
            assert forged.value.status == 403
            assert "from the page of another site is not taken" in page.inner_text("body")
            # Nor can it show the dashboard in a frame of its own, to lay itself over the dashboard's buttons.
            framing, frame = "http://127.0.0.1:9/frame", f'<iframe src="{service.url}/dashboard"></iframe>'
            page.route(framing, lambda route: route.fulfill(content_type="text/html", body=frame))
            page.goto(framing)
            eventually(lambda: len(page.frames) == 2, timeout_s=10, what="the frame loaded or refused")
            framed = page.frames[1]
            framed.wait_for_load_state()
            assert framed.url.startswith("chrome-error://"), framed.url  # refused: X-Frame-Options, frame-ancestors
            # Signing out: the browser forgets the key, and the dashboard asks for one again.
            assert page.goto(f"{service.url}/dashboard").status == 200
            page.click("#sign-out-form button")
            page.wait_for_selector("#key")
            assert page.goto(f"{service.url}/dashboard").status == 401, "signed out"
            page.fill("#key", service.manager_key)
            page.click("#sign-in")
            page.wait_for_selector("#show-hours")
            # The service's API page, open to the same signed-in browser, drawn by Swagger UI from the service's own
            # files: every request elsewhere is refused, as on a network without internet access.
            here = service.url + "/"
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(here) else route.abort())
            assert page.goto(f"{service.url}/docs").status == 200
            page.wait_for_selector(".opblock")  # the operations, from /openapi.json
            browser.close()

        assert shown == api_rows()
        assert [row for row in shown if RUN in row[0]] == expected
    assert (tmp_path / "dashboard-hours-per-client.png").stat().st_size > 10_000
