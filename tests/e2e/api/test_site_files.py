"""The dashboard's files over HTTP: compressed, revalidated, under the security headers."""

from __future__ import annotations

import gzip

import pytest

from tests.e2e.api.harness import ApiUnderTest
from tests.e2e.dashboard.browser import AXE

pytestmark = pytest.mark.asyncio(loop_scope="module")
VENDOR = "/static/vendor/lightweight-charts.mjs"


@pytest.mark.skipif(not AXE.parent.parent.exists(), reason="needs make install's npm packages")
async def test_the_chart_library_is_served_gzipped_and_a_second_load_is_a_304(
    api: ApiUnderTest,
) -> None:
    async with api.http.get(
        api.base + VENDOR, headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    ) as response:
        packed = await response.read()
        assert response.status == 200
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Content-Type"].startswith("text/javascript")
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        etag = response.headers["ETag"]
    library = gzip.decompress(packed)
    assert b"createChart" in library
    assert len(packed) < len(library) / 2
    again = await api.get(VENDOR, headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.body == b""


async def test_pages_are_html_through_the_shell_and_unknown_pages_are_404(
    api: ApiUnderTest,
) -> None:
    page = await api.get("/funding")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert b'src="/static/js/pages/funding.js"' in page.body
    assert page.headers["Cache-Control"] == "no-cache"
    assert (await api.get("/no-such-page")).status == 404
    assert (await api.get("/static/../pyproject.toml")).status == 404
