"""``arbengine archive status | seal | verify`` and ``arbengine backtest`` over the tape archive,
each as a user runs it: a process of its own against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from arbengine.store.migrations import apply_migrations
from tests.conftest import REPO, free_port
from tests.support.tape import (
    D0,
    DAY_MS,
    PROBE_STRATEGY,
    Tape,
    count_days,
    store_rates,
    store_trades,
)


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.strip().splitlines()


async def arbengine(*args: str, url: str, archive: str, cwd: Path, **env: str) -> Done:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arbengine", *args,
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "ARB_DATABASE_URL": url, "ARB_ARCHIVE_DIR": archive,
             "ARB_CONFIG": str(REPO / "config" / "arbengine.toml"), **env},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


@pytest.fixture
async def tape_url(database_url: str) -> str:
    """Two symbols: four whole days (3,000 trades each) and the first hour of a fifth, counted
    as the continuity check counts them, with premiumIndex readings."""
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        for tape in (Tape("BTCUSDT", 60_000.0, 21), Tape("ETHUSDT", 3_000.0, 22)):
            batches = [tape.day(D0 + k * DAY_MS, 3_000) for k in range(4)]
            batches.append(tape.day(D0 + 4 * DAY_MS, 100, span_ms=3_600_000))
            await store_trades(conn, batches)
            await store_rates(conn, tape.symbol, D0, D0 + 5 * DAY_MS)
        await count_days(conn, ["BTCUSDT", "ETHUSDT"], D0, D0 + 5 * DAY_MS)
    finally:
        await conn.close()
    return database_url


async def test_seal_status_and_verify_find_and_mend_a_corrupted_file(
    tape_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    where = f"file://{root}"  # a URL, as an object store's would be: pyarrow's filesystems
    run = {"url": tape_url, "archive": where, "cwd": tmp_path}

    status = await arbengine("archive", "status", **run)
    assert (status.code, status.err) == (0, ""), status.err
    assert status.lines[0] == f"tape archive: {where}"
    assert status.lines[1].split() == ["symbol", "counted", "complete", "sealed", "to", "seal",
                                       "changed", "trades", "MB", "first", "last"]  # fmt: skip
    assert status.lines[2].split() == ["BTCUSDT", "5", "5", "0", "4", "0", "0", "0.0", "-", "-"]

    sealed = await arbengine("archive", "seal", **run)
    assert (sealed.code, sealed.err) == (0, "")
    days = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    assert [line.split(":")[0] for line in sealed.lines[:-1]] == [
        f"sealed {symbol} {day}" for day in days for symbol in ("BTCUSDT", "ETHUSDT")
    ]
    assert sealed.lines[-1] == f"8 days sealed (24,000 trades) in {where}"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))
    assert files == [
        f"agg_trades/symbol={symbol}/{day}.parquet"
        for symbol in ("BTCUSDT", "ETHUSDT")
        for day in days
    ]
    again = await arbengine("archive", "seal", **run)
    assert (again.code, again.lines) == (
        0, ["nothing to seal: no complete day waits (see `arbengine archive status`)"]
    )  # fmt: skip

    verified = await arbengine("archive", "verify", **run)
    assert (verified.code, verified.err) == (0, "")
    assert verified.lines == [
        "verified 8 sealed days (24,000 trades): every file matches its manifest and the table"
    ]

    target = root / "agg_trades" / "symbol=BTCUSDT" / "2026-01-02.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 3] ^= 0x01
    target.write_bytes(bytes(data))
    broken = await arbengine("archive", "verify", "--symbols", "btcusdt", **run)
    assert (broken.code, broken.err) == (1, "")
    assert broken.lines == [
        "BTCUSDT 2026-01-02: agg_trades/symbol=BTCUSDT/2026-01-02.parquet does not match its "
        "SHA-256 checksum; unsealed: read from PostgreSQL until it is sealed again",
        "1 of 4 sealed days failed",
    ]
    shown = await arbengine("archive", "status", "--json", **run)
    body = json.loads(shown.out)
    assert body["archive"] == where
    btc = next(row for row in body["symbols"] if row["symbol"] == "BTCUSDT")
    assert (btc["days_sealed"], btc["days_changed"], btc["days_to_seal"]) == (3, 1, 1)
    assert (btc["first_sealed"], btc["last_sealed"]) == ("2026-01-01", "2026-01-04")

    mended = await arbengine("archive", "seal", **run)
    assert mended.lines[0].startswith("resealed BTCUSDT 2026-01-02: 3,000 trades, ")
    assert (await arbengine("archive", "verify", **run)).code == 0

    (root / "agg_trades" / "symbol=ETHUSDT" / "2026-01-04.parquet").unlink()
    status = await arbengine("archive", "status", **run)
    assert status.lines[-1] == (
        "ETHUSDT 2026-01-04: agg_trades/symbol=ETHUSDT/2026-01-04.parquet is missing or not the "
        "size sealed (`arbengine archive verify` unseals it)"
    )
    gone = await arbengine("archive", "verify", "--from", "2026-01-04", **run)
    assert (gone.code, gone.lines[-1]) == (1, "1 of 2 sealed days failed")
    assert gone.lines[0].startswith(
        "ETHUSDT 2026-01-04: agg_trades/symbol=ETHUSDT/2026-01-04.parquet is missing; unsealed"
    )


async def test_a_backtest_reads_sealed_days_from_the_archive_and_decides_the_same(
    tape_url: str, tmp_path: Path
) -> None:
    archive = str(tmp_path / "archive")
    sealed = await arbengine("archive", "seal", url=tape_url, archive=archive, cwd=tmp_path)
    assert sealed.code == 0, sealed.err
    # A file gone bad since: refused with a warning, its day read from PostgreSQL.
    target = tmp_path / "archive" / "agg_trades" / "symbol=ETHUSDT" / "2026-01-03.parquet"
    target.write_bytes(target.read_bytes()[:-100])
    strategy = tmp_path / "probe.json"
    strategy.write_text(json.dumps(PROBE_STRATEGY))
    outputs = {}
    for source, where in (("archive", archive), ("postgres", "")):
        done = await arbengine(
            "backtest", "--strategy", str(strategy), "--from", "2026-01-02T12:00",
            "--to", "2026-01-04", "--out", str(tmp_path / source), "--evaluations",
            url=tape_url, archive=where, cwd=tmp_path,
        )  # fmt: skip
        assert done.code == 0, done.err
        outputs[source] = done.lines
    warnings = [json.loads(line) for line in outputs["archive"] if line.startswith("{")]
    assert [(w["event"], w["symbol"], w["day"]) for w in warnings] == [
        ("archive.file_rejected", "ETHUSDT", "2026-01-03")
    ]
    size = target.stat().st_size
    assert warnings[0]["reason"] == (
        f"agg_trades/symbol=ETHUSDT/2026-01-03.parquet has {size} bytes, {size + 100} were written"
    )
    # From 10:00 of the first day (26 h before --from) to the end of the fourth, but ETHUSDT's
    # third day.
    conn = await asyncpg.connect(tape_url)
    try:
        expected = await conn.fetchval(
            "SELECT count(*) FROM agg_trades WHERE ts >= $1 AND ts < $2", D0 + 36_000_000,
            D0 + 4 * DAY_MS,
        ) - 3_000  # fmt: skip
    finally:
        await conn.close()
    assert (
        f"{expected:,} of the trades read from the tape archive ({archive})" in outputs["archive"]
    )
    assert not any("read from the tape archive" in line for line in outputs["postgres"])
    for name in ("evaluations.csv", "signals.csv", "trades.csv", "summary.json"):
        assert (tmp_path / "archive" / name).read_bytes() == (
            tmp_path / "postgres" / name
        ).read_bytes(), name


UNREACHABLE = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"  # nothing listens there


@pytest.mark.parametrize(
    ("args", "env", "code", "line"),
    [
        (["status"], {"ARB_ARCHIVE_DIR": ""}, 2,
         "arbengine: archive status: [archive] dir is empty: there is no tape archive "
         "(set [archive] dir or ARB_ARCHIVE_DIR)"),
        (["seal", "--symbols", "BTC-USDT"], {}, 2,
         "arbengine: archive seal: --symbols: 'BTC-USDT' is not a symbol (e.g. BTCUSDT)"),
        (["verify", "--from", "2026-13-01"], {}, 2,
         "arbengine: archive verify: --from: '2026-13-01' is not a day (2026-01-31)"),
        (["verify", "--from", "2026-01-03", "--to", "2026-01-01"], {}, 2,
         "arbengine: archive verify: --to must not be before --from"),
        (["status"], {"ARB_ARCHIVE_SEAL_INTERVAL": "10ms"}, 2,
         "arbengine: config error: settings [archive]: seal_interval must be at least 1s"),
        (["status"], {"ARB_ARCHIVE_DIR": "nosuchstore://bucket/tape"}, 2,
         "arbengine: archive status: [archive] dir: pyarrow cannot open "
         "'nosuchstore://bucket/tape': "),
        (["seal"], {}, 1,
         "arbengine: archive seal: cannot connect to PostgreSQL (ARB_DATABASE_URL): "),
    ],
)  # fmt: skip
async def test_mistakes_are_one_line_and_an_exit_status(
    tmp_path: Path, args: list[str], env: dict[str, str], code: int, line: str
) -> None:
    archive = str(tmp_path / "archive")
    done = await arbengine("archive", *args, url=UNREACHABLE, archive=archive, cwd=tmp_path, **env)
    assert (done.code, done.out) == (code, "")
    assert len(done.err.strip().splitlines()) == 1, done.err
    assert done.err.startswith(line), done.err
    assert "nobody@" not in done.err


pytestmark = pytest.mark.timeout(300)
