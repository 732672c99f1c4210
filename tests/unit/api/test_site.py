"""Which URLs the dashboard's files become, with and without the npm package."""

from __future__ import annotations

import gzip
from pathlib import Path

from arbengine.api.site import SiteFile, load_site


def _site_tree(root: Path, *, charts: bool) -> None:
    (root / "js" / "pages").mkdir(parents=True)
    (root / "css").mkdir()
    (root / "shell.html").write_text('<script type="module" src="/static/js/pages/{{page}}.js">')
    (root / "js" / "pages" / "overview.js").write_text("// home")
    (root / "js" / "pages" / "funding.js").write_text("// funding")
    (root / "js" / "pages" / "notes.txt").write_text("not a page")
    (root / "js" / "api.js").write_text("export {};")
    (root / "css" / "app.css").write_text("body{}")
    (root / "package.json").write_text("{}")
    if charts:
        dist = root / "node_modules" / "lightweight-charts" / "dist"
        dist.mkdir(parents=True)
        (dist / "lightweight-charts.standalone.production.mjs").write_text("export const x = 1;")


def test_each_page_module_is_a_url_through_the_shell_and_assets_live_under_static(
    tmp_path: Path,
) -> None:
    _site_tree(tmp_path, charts=True)
    site = load_site(tmp_path)
    assert sorted(site.pages) == ["/", "/funding"]
    assert b"/static/js/pages/funding.js" in site.pages["/funding"].content
    assert b"/static/js/pages/overview.js" in site.pages["/"].content
    assert sorted(site.assets) == [
        "/static/css/app.css",
        "/static/js/api.js",
        "/static/js/pages/funding.js",
        "/static/js/pages/overview.js",
        "/static/vendor/lightweight-charts.mjs",
    ]
    assert site.assets["/static/vendor/lightweight-charts.mjs"].content_type == "text/javascript"


def test_without_the_npm_package_there_is_no_chart_library_route(tmp_path: Path) -> None:
    _site_tree(tmp_path, charts=False)
    site = load_site(tmp_path)
    assert "/static/vendor/lightweight-charts.mjs" not in site.assets
    assert "/" in site.pages


def test_text_files_carry_a_gzip_copy_and_a_content_etag() -> None:
    text = ("const a = 1;\n" * 200).encode()
    first = SiteFile.of(text, "text/javascript")
    assert first.gzipped is not None
    assert gzip.decompress(first.gzipped) == text
    assert first.etag == SiteFile.of(text, "text/javascript").etag
    assert first.etag != SiteFile.of(text + b"//", "text/javascript").etag
    assert SiteFile.of(b"\x89PNG" * 400, "image/png").gzipped is None


def test_the_packaged_site_has_every_page_of_the_navigation() -> None:
    site = load_site()
    for url in ("/", "/login", "/register", "/about", "/funding", "/signals", "/paper"):
        assert url in site.pages
    for url in ("/live", "/tape", "/server", "/admin"):
        assert url in site.pages
