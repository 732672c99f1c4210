"""The frame every page shares: log in and out, register, the navigation, the session.

Its daemon issues access tokens that live 3 s, so a page left open outlives one and
must refresh it without the user noticing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import expect

from tests.e2e.api.harness import PASSWORD, ApiUnderTest, running_api
from tests.e2e.dashboard.browser import (
    NEEDS_BROWSER,
    check_page,
    log_in,
    open_page,
)
from tests.support.postgres import PgTestServer

pytestmark = [pytest.mark.asyncio(loop_scope="module"), NEEDS_BROWSER]

ACCESS_TTL_S = 3
NAV = ["Overview", "Funding", "Signals", "Paper", "Live", "Tape", "Server", "About"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    async with running_api(
        pg_server,
        tmp_path_factory.mktemp("session"),
        {"ARB_AUTH_ACCESS_TTL": f"{ACCESS_TTL_S}s"},
    ) as under_test:
        yield under_test


async def test_a_wrong_password_is_refused_and_the_right_one_lands_on_the_page_asked_for(
    api: ApiUnderTest, browser: object
) -> None:
    session = await api.new_user("frame")
    async with open_page(browser, api.base) as tab:
        # Not signed in: any page sends us to the login form, remembering where we were.
        await tab.goto("/about")
        await tab.ready()
        await tab.goto("/server")
        await tab.page.wait_for_url(f"{api.base}/login?next=%2Fserver")
        await tab.ready()
        tab.allow(r"HTTP 401: POST .*/api/login")
        tab.allow(r"status of 401")
        await tab.page.fill("#username", session.username)
        await tab.page.fill("#password", "not the password")
        await tab.page.click("#login-submit")
        await expect(tab.page.locator("#login-error")).to_have_text("wrong username or password")
        await check_page(tab, "login")

        await tab.page.fill("#password", PASSWORD)
        await tab.page.click("#login-submit")
        await tab.page.wait_for_url(f"{api.base}/server")
        await expect(tab.page.locator("#whoami")).to_have_text(f"{session.username} (user)")
        # A user sees every page but Admin, and the current one is marked.
        await expect(tab.page.locator("header nav a")).to_have_text(NAV)
        await expect(tab.page.locator('header nav a[aria-current="page"]')).to_have_text("Server")
        await tab.ready()

        # The navigation bar goes where it says.
        await tab.page.click("header nav >> text=About")
        await tab.page.wait_for_url(f"{api.base}/about")
        await tab.ready()
        await expect(tab.page.locator("h1")).to_have_text("About")
        await expect(tab.page.locator("#about-version")).to_have_text("Version 0.1.0")
        await check_page(tab, "about")

        await tab.page.click("#logout")
        await tab.page.wait_for_url(f"{api.base}/login")
        await tab.goto("/")
        await tab.page.wait_for_url(f"{api.base}/login?next=%2F")


async def test_register_with_an_invite_code_from_the_page(
    api: ApiUnderTest, browser: object
) -> None:
    code = await api.invite()
    username = api.unique_name("newcomer")
    async with open_page(browser, api.base) as tab:
        await tab.goto(f"/register?invite={code}")
        await tab.ready()
        await expect(tab.page.locator("#invite")).to_have_value(code)
        await check_page(tab, "register")
        await tab.page.fill("#username", username)
        await tab.page.fill("#password", PASSWORD)
        await tab.page.click("#register-submit")
        await tab.page.wait_for_url(f"{api.base}/")
        await expect(tab.page.locator("#whoami")).to_have_text(f"{username} (user)")

        # The code is spent: a second registration with it is refused, in words.
        await tab.page.click("#logout")
        await tab.page.wait_for_url(f"{api.base}/login")
        tab.allow(r"HTTP 4\d\d: POST .*/api/register")
        tab.allow(r"status of 4\d\d")
        await tab.goto(f"/register?invite={code}")
        await tab.ready()
        await tab.page.fill("#username", api.unique_name("late"))
        await tab.page.fill("#password", PASSWORD)
        await tab.page.click("#register-submit")
        await expect(tab.page.locator("#register-error")).not_to_have_text("")
        assert tab.page.url == f"{api.base}/register?invite={code}"
    rows = await api.sql("SELECT username FROM users WHERE username = $1", username)
    assert len(rows) == 1


async def test_an_expired_access_token_is_refreshed_without_the_user_noticing(
    api: ApiUnderTest, browser: object
) -> None:
    session = await api.new_user("patient")
    async with open_page(browser, api.base) as tab:
        refreshes: list[int] = []
        tab.page.on(
            "request",
            lambda req: refreshes.append(1) if req.url.endswith("/api/refresh") else None,
        )
        await log_in(tab, session.username, session.password, then="/about")
        issued = time.monotonic()
        signed_in_refreshes = len(refreshes)
        # The page's access token is now older than its lifetime.
        await asyncio.sleep(max(0.0, ACCESS_TTL_S + 1 - (time.monotonic() - issued)))
        tab.allow(r"HTTP 401: GET .*/api/me")
        tab.allow(r"status of 401")
        # The page's next call meets the expired token: it is refused, the pair rotates
        # and the call is made again, all inside the page's own API client.
        me = await tab.page.evaluate(
            "async () => (await import('/static/js/api.js')).apiGet('/api/me')"
        )
        assert me["username"] == session.username
        assert len(refreshes) == signed_in_refreshes + 1
        assert tab.page.url == f"{api.base}/about"


async def test_times_read_in_the_browsers_time_zone_with_utc_on_hover(
    api: ApiUnderTest, browser: object
) -> None:
    async with open_page(browser, api.base, timezone="Asia/Tokyo") as tab:
        await tab.goto("/about")
        await tab.ready()
        shown = await tab.page.evaluate(
            """async () => {
                const dom = await import('/static/js/dom.js');
                const charts = await import('/static/js/charts.js');
                const el = dom.timeEl(Date.UTC(2026, 0, 2, 3, 4, 5));
                return {text: el.textContent, title: el.title, datetime: el.dateTime,
                        axis: charts.chartTime(Date.UTC(2026, 0, 2, 3, 4, 5))};
            }"""
        )
    # Tokyo is UTC+9 all year: 03:04:05 UTC is 12:04:05 there.
    assert "12:04:05" in shown["text"]
    assert shown["title"] == "2026-01-02T03:04:05Z (UTC)"
    assert shown["datetime"] == "2026-01-02T03:04:05.000Z"
    # The chart's axis is shifted so that it, too, reads Tokyo time.
    assert shown["axis"] == 1767323045 + 9 * 3600
