"""The Admin page: an admin makes an invite and bans a user from it; a user never sees it."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.e2e.api.harness import PASSWORD, ApiUnderTest, Session
from tests.e2e.dashboard.browser import NEEDS_BROWSER, check_page, log_in, open_page

pytestmark = [pytest.mark.asyncio(loop_scope="module"), NEEDS_BROWSER]


async def _admin(api: ApiUnderTest) -> Session:
    session = await api.new_user("boss")
    code, _, err = await api.admin("set-admin", session.username)
    assert code == 0, err
    return session


async def test_an_admin_creates_an_invite_and_bans_a_user_from_the_page(
    api: ApiUnderTest, browser: object
) -> None:
    admin = await _admin(api)
    victim = await api.new_user("victim")
    async with open_page(browser, api.base) as tab:
        await log_in(tab, admin.username, PASSWORD, then="/admin")
        page = tab.page
        await expect(page.locator('header nav a[href="/admin"]')).to_have_text("Admin")
        victim_row = page.locator(f'#user-list tr[data-user="{victim.username}"]')
        await expect(victim_row.locator("td.state")).to_have_text("active")
        await expect(victim_row.locator("td.role")).to_have_text("user")
        await expect(page.locator(f'#user-list tr[data-user="{admin.username}"]')).to_contain_text(
            "you"
        )

        # An invite, made from the form: shown at once, listed as usable, and it works.
        await page.fill("#invite-note", "for the new analyst")
        await page.select_option("#invite-expiry", "604800")
        await page.click("#invite-create")
        code_cell = page.locator("#invite-codes .invite-code")
        await expect(code_cell).to_have_count(1)
        code = (await code_cell.text_content() or "").strip()
        listed = page.locator(f'#invite-list tr[data-code="{code}"]')
        await expect(listed.locator("td.status")).to_have_text("usable")
        await expect(listed).to_contain_text("for the new analyst")
        rows = await api.sql(
            "SELECT note, expires_at - created_at AS ttl FROM invite_codes WHERE code = $1", code
        )
        assert rows[0]["note"] == "for the new analyst"
        assert rows[0]["ttl"].total_seconds() == 604800
        registered = await api.post(
            "/api/register",
            {"invite_code": code, "username": api.unique_name("hired"), "password": PASSWORD},
        )
        assert registered.status == 201, registered.body

        # A ban asks first; cancelling changes nothing.
        await victim_row.locator('button[data-action="ban"]').click()
        await expect(page.locator("#confirm-title")).to_have_text(f"Ban {victim.username}?")
        await page.click("#confirm-no")
        await expect(page.locator("#confirm")).to_have_count(0)
        assert (await api.get("/api/me", victim.access)).status == 200

        await victim_row.locator('button[data-action="ban"]').click()
        await page.click("#confirm-yes")
        await expect(page.locator("#admin-outcome")).to_contain_text(f"{victim.username} is banned")
        await expect(victim_row.locator("td.state")).to_have_text("banned")
        refused = await api.get("/api/me", victim.access)
        assert refused.status == 403
        assert refused.error["code"] == "banned"
        audit = page.locator("#audit-list tbody tr").first
        await expect(audit.locator("td.action")).to_have_text("ban")
        await expect(audit.locator("td.target")).to_have_text(victim.username)
        await check_page(tab, "admin")


async def test_a_user_neither_sees_nor_reaches_the_admin_page_nor_its_routes(
    api: ApiUnderTest, browser: object
) -> None:
    user = await api.new_user("plain")
    invites_before = await api.sql("SELECT count(*) AS n FROM invite_codes")
    async with open_page(browser, api.base) as tab:
        await log_in(tab, user.username, PASSWORD)
        await expect(tab.page.locator("header nav a")).not_to_have_text(["Admin"])
        assert await tab.page.locator('header nav a[href="/admin"]').count() == 0
        # Typing the address sends the user back to the overview.
        await tab.goto("/admin")
        await tab.page.wait_for_url(f"{api.base}/")
        await tab.ready()
        # And the routes behind it refuse the user's own session.
        tab.allow(r"HTTP 403: (GET|POST) .*/api/admin/")
        tab.allow(r"status of 403")
        answers = await tab.page.evaluate(
            """async () => {
                const api = await import('/static/js/api.js');
                const codes = [];
                for (const call of [
                    () => api.apiGet('/api/admin/users'),
                    () => api.apiPost('/api/admin/invites', {count: 1}),
                ]) {
                    try { await call(); codes.push('allowed'); }
                    catch (err) { codes.push(`${err.status} ${err.code}`); }
                }
                return codes;
            }"""
        )
        assert answers == ["403 forbidden", "403 forbidden"]
    assert await api.sql("SELECT count(*) AS n FROM invite_codes") == invites_before
