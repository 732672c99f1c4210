"""The dashboard in Debian's Chromium through Playwright: what every page test checks.

Playwright drives ``/usr/bin/chromium`` (its own browser download is never used).
Each test opens a page with :func:`open_page`, which records every console error,
uncaught exception and failed request; :func:`assert_clean` fails the test on any.
:func:`check_page` is the common end of a page test: no problem recorded, no axe-core
violation of impact serious or critical, and a screenshot at 1280 and at 390 px.
Screenshots go to ``test-artifacts/screenshots/`` at the top of the checkout (or
``$ARB_SCREENSHOT_DIR``) for a person to review; they are not committed.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = REPO / "arbengine" / "api" / "static" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(os.environ.get("ARB_SCREENSHOT_DIR") or REPO / "test-artifacts" / "screenshots")
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}
SERIOUS = ("serious", "critical")

MISSING = (
    f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium)"
    if not CHROMIUM.exists()
    else f"needs the dashboard's npm packages ({AXE} missing: run make install)"
    if not AXE.exists()
    else None
)
NEEDS_BROWSER = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@dataclass
class PageUnderTest:
    """One browser tab and what went wrong in it."""

    page: Any
    base: str
    problems: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """A problem this test causes on purpose (e.g. a refused login's 401)."""
        self.allowed.append(re.compile(pattern))

    def record(self, text: str) -> None:
        if not any(p.search(text) for p in self.allowed):
            self.problems.append(text)

    async def goto(self, path: str) -> None:
        await self.page.goto(self.base + path)

    async def ready(self) -> None:
        """The page has drawn its first data (layout.startPage sets data-ready)."""
        from playwright.async_api import expect

        await expect(self.page.locator("body")).to_have_attribute("data-ready", "true")


def _watch(tab: PageUnderTest) -> None:
    page = tab.page
    page.on("pageerror", lambda exc: tab.record(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: tab.record(f"console {msg.type}: {msg.text}") if msg.type == "error" else None,
    )
    page.on(
        "requestfailed",
        # A request cut off because the user moved to another page (ERR_ABORTED) is not a
        # failure anyone sees; anything else is.
        lambda req: (
            tab.record(f"request failed: {req.method} {req.url} {req.failure}")
            if "ERR_ABORTED" not in (req.failure or "")
            else None
        ),
    )
    page.on(
        "response",
        lambda res: (
            tab.record(f"HTTP {res.status}: {res.request.method} {res.url}")
            if res.status >= 400
            else None
        ),
    )


@asynccontextmanager
async def open_page(
    browser: Any, base: str, viewport: dict[str, int] | None = None, timezone: str | None = None
) -> AsyncIterator[PageUnderTest]:
    context = await browser.new_context(viewport=viewport or WIDE, timezone_id=timezone)
    try:
        tab = PageUnderTest(await context.new_page(), base)
        _watch(tab)
        yield tab
    finally:
        await context.close()


async def log_in(tab: PageUnderTest, username: str, password: str, then: str = "/") -> None:
    """Through the login form, as a person would; lands on ``then``."""
    await tab.goto(f"/login?next={quote(then, safe='/')}")
    await tab.page.fill("#username", username)
    await tab.page.fill("#password", password)
    await tab.page.click("#login-submit")
    await tab.page.wait_for_url(tab.base + then)
    await tab.ready()


def assert_clean(tab: PageUnderTest) -> None:
    assert tab.problems == [], "\n".join(tab.problems)


async def axe_violations(tab: PageUnderTest) -> list[dict[str, Any]]:
    """axe-core's violations of impact serious or critical on the page as it is now.

    The script goes in through the DevTools protocol (``evaluate``), which the page's
    Content-Security-Policy does not govern: the page itself is checked unchanged.
    """
    await tab.page.evaluate(AXE.read_text("utf-8") + "\n;undefined")
    result = await tab.page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
    )
    return [v for v in result if v["impact"] in SERIOUS]


async def canvas_drawn(tab: PageUnderTest, selector: str) -> bool:
    """Whether any canvas inside ``selector`` has a pixel that is not blank."""
    return bool(
        await tab.page.evaluate(
            """(selector) => {
                for (const canvas of document.querySelectorAll(selector + ' canvas')) {
                    if (!canvas.width || !canvas.height) continue;
                    const ctx = canvas.getContext('2d');
                    if (!ctx) continue;
                    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
                    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
                }
                return false;
            }""",
            selector,
        )
    )


async def screenshot(tab: PageUnderTest, name: str) -> Path:
    width = tab.page.viewport_size["width"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{width}.png"
    await tab.page.screenshot(path=str(path), full_page=True)
    return path


async def check_page(tab: PageUnderTest, name: str) -> None:
    """The end of every page test: clean, accessible, photographed at both widths."""
    assert_clean(tab)
    violations = await axe_violations(tab)
    assert violations == [], violations
    await screenshot(tab, name)
    await tab.page.set_viewport_size(NARROW)
    await tab.page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")
    overflow = await tab.page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name} is {overflow} px wider than a 390 px screen"
    violations = await axe_violations(tab)
    assert violations == [], violations
    await screenshot(tab, name)
    await tab.page.set_viewport_size(WIDE)
    assert_clean(tab)
