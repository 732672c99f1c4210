"""Benchmarks that run several packages together (the others live beside their package)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from arbengine.store.embedded import embedded_server


@contextlib.asynccontextmanager
async def bench_database(url: str | None, keep: Path | None = None) -> AsyncIterator[str]:
    """The given PostgreSQL, or a private embedded one: in ``keep`` (kept for the next run)
    or in a temporary directory."""
    if url:
        yield url
        return
    if keep is not None:
        async with embedded_server(keep / "pg") as server:
            yield server.url
        return
    with tempfile.TemporaryDirectory(prefix="arbengine-bench-") as tmp:
        async with embedded_server(Path(tmp) / "pg") as server:
            yield server.url
