"""Benchmarks that run several packages together (the others live beside their package)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from arbengine.store.embedded import embedded_server


@contextlib.asynccontextmanager
async def bench_database(url: str | None) -> AsyncIterator[str]:
    """The given PostgreSQL, or a private embedded one in a temporary directory."""
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="arbengine-bench-") as tmp:
        async with embedded_server(Path(tmp) / "pg") as server:
            yield server.url
