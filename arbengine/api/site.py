"""The dashboard's files: pages, assets and the chart library npm installed, read once at start.

A page is a JavaScript module under ``static/js/pages/``: ``overview.js`` is served
at ``/``, any other ``NAME.js`` at ``/NAME``, each through the one HTML shell
(``static/shell.html``), so adding a page is adding a module. Assets are served
under ``/static/``. The chart library is taken from the npm package installed
beside the files (``static/node_modules``, by ``make install`` and the Dockerfile);
without it the vendor route does not exist and the pages show a note in place of
charts. Files are held in memory with a gzip copy and an ETag: the whole site is
a few hundred kilobytes, and a browser revalidates instead of downloading again.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

from arbengine.api.services import Call

CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
ASSET_FOLDERS = ("js", "css", "img")
PAGES_FOLDER = ("js", "pages")
HOME_PAGE = "overview"
SHELL = "shell.html"
VENDOR = {
    # URL name under /static/vendor/ -> file inside static/node_modules/
    "lightweight-charts.mjs": (
        "lightweight-charts/dist/lightweight-charts.standalone.production.mjs"
    ),
}
_COMPRESSIBLE = ("text/", "image/svg+xml")


@dataclass(frozen=True, slots=True)
class SiteFile:
    content: bytes
    content_type: str
    gzipped: bytes | None
    etag: str

    @classmethod
    def of(cls, content: bytes, content_type: str) -> SiteFile:
        packed = (
            gzip.compress(content, 9, mtime=0)
            if content_type.startswith(_COMPRESSIBLE) and len(content) > 1024
            else None
        )
        digest = hashlib.blake2b(content, digest_size=12).hexdigest()
        return cls(content, content_type, packed, f'"{digest}"')


@dataclass(frozen=True, slots=True)
class Site:
    pages: dict[str, SiteFile]
    """URL path -> the shell filled in for that page."""
    assets: dict[str, SiteFile]
    """URL path (``/static/...``) -> file."""


def load_site(root: Traversable | None = None) -> Site:
    """The site under ``root`` (the package's ``static`` folder unless given)."""
    root = root if root is not None else resources.files("arbengine.api") / "static"
    assets: dict[str, SiteFile] = {}
    for folder in ASSET_FOLDERS:
        for path, entry in _walk(root / folder, folder):
            kind = _content_type(path)
            if kind is not None:
                assets[f"/static/{path}"] = SiteFile.of(entry.read_bytes(), kind)
    favicon = root / "favicon.svg"
    if favicon.is_file():
        assets["/static/favicon.svg"] = SiteFile.of(favicon.read_bytes(), "image/svg+xml")
    modules = root / "node_modules"
    for name, inside in VENDOR.items():
        entry = modules.joinpath(*inside.split("/"))
        if entry.is_file():
            assets[f"/static/vendor/{name}"] = SiteFile.of(entry.read_bytes(), "text/javascript")
    pages: dict[str, SiteFile] = {}
    shell_entry = root / SHELL
    if shell_entry.is_file():
        shell = shell_entry.read_text("utf-8")
        for path, _ in _walk(root.joinpath(*PAGES_FOLDER), "/".join(PAGES_FOLDER)):
            name = path.rsplit("/", 1)[-1].removesuffix(".js")
            if not path.endswith(".js"):
                continue
            url = "/" if name == HOME_PAGE else f"/{name}"
            html = shell.replace("{{page}}", name)
            pages[url] = SiteFile.of(html.encode("utf-8"), "text/html")
    return Site(pages=pages, assets=assets)


def _walk(folder: Traversable, prefix: str) -> list[tuple[str, Traversable]]:
    if not folder.is_dir():
        return []
    found: list[tuple[str, Traversable]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        path = f"{prefix}/{entry.name}"
        if entry.is_dir():
            found.extend(_walk(entry, path))
        elif entry.is_file():
            found.append((path, entry))
    return found


def _content_type(path: str) -> str | None:
    dot = path.rfind(".")
    return CONTENT_TYPES.get(path[dot:]) if dot >= 0 else None


def file_handler(file: SiteFile) -> Callable[[Call], Awaitable[web.Response]]:
    async def handler(call: Call) -> web.Response:
        request = call.request
        headers = {"Cache-Control": "no-cache", "ETag": file.etag, "Vary": "Accept-Encoding"}
        if file.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        body = file.content
        if file.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
            body = file.gzipped
            headers["Content-Encoding"] = "gzip"
        charset = "utf-8" if file.content_type.startswith("text/") else None
        return web.Response(
            body=body, content_type=file.content_type, charset=charset, headers=headers
        )

    return handler
