"""The tape archive's files: one Parquet file per symbol and UTC day, written once.

Days the sealer (``store/archive_sealer.py``) has proven complete are written
under the archive's root as ``agg_trades/symbol=<SYMBOL>/<YYYY-MM-DD>.parquet``:
the root is a directory, or a URL that pyarrow's filesystems open
(``s3://bucket/prefix``, ``gs://…``, ``file:///…``). The columns are the
replay's (``agg_id``, ``ts``, ``price``, ``qty``, ``is_buyer_maker``), in
(ts, agg_id) order, zstd-compressed: ids and times delta-encoded, prices and
quantities dictionary-encoded, which on a BTC-like day is about 5.5 bytes a
trade and decodes at tens of millions of trades a second. Any Parquet reader
opens them (DuckDB, polars, pandas; see the README's *Tape archive*).

A file is trusted only as far as its manifest row (``agg_trades_archive``):
reading checks its size, the SHA-256 of its bytes, its columns, row count and
id range before anything of it is used, and a file that fails any of them is
refused (``ArchiveFileRejected``), so its day is read from PostgreSQL instead.

pyarrow is imported by the functions that touch files, not with this module:
it costs about 60 MB of resident memory and 0.15 s to import, which neither
the daemon (it seals in a worker process) nor a backtest without sealed days
should pay.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from arbengine.domain.errors import ConfigError, RetryableError
from arbengine.domain.market import TradeBatch

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

DAY_MS = 86_400_000
EPOCH_DAY = date(1970, 1, 1)
FORMAT = "1"
"""Written into each file's metadata (``arbengine.format``), for readers of later versions."""
COLUMNS = ("agg_id", "ts", "price", "qty", "is_buyer_maker")
_KINDS = {"agg_id": "int64", "ts": "int64", "price": "double", "qty": "double",
          "is_buyer_maker": "bool"}  # fmt: skip
"""Each column's arrow type (by its alias)."""


def day_of_ms(ts_ms: int) -> date:
    """The UTC day of an epoch-ms time."""
    return EPOCH_DAY + timedelta(days=ts_ms // DAY_MS)


def day_start_ms(day: date) -> int:
    return (day - EPOCH_DAY).days * DAY_MS


def file_path(symbol: str, day: date) -> str:
    """Where a symbol-day's file lives, relative to the archive's root (Hive-style: readers
    that understand ``symbol=`` directories get a ``symbol`` column for free)."""
    return f"agg_trades/symbol={symbol}/{day.isoformat()}.parquet"


@dataclass(frozen=True)
class SealedFile:
    """A symbol-day's file as its manifest row records it."""

    symbol: str
    day: date
    rows: int
    first_id: int
    last_id: int
    bytes: int
    sha256: str
    path: str


class ArchiveFileRejected(Exception):
    """A sealed day's file is missing, unreadable or not what its manifest row says."""


class ArchiveUnavailable(RetryableError):
    """The archive's storage could not be written (a full disk, an object store away)."""


def shown(where: str) -> str:
    """The archive's location for a message: a URL without its user and password."""
    parts = urllib.parse.urlsplit(where)
    if "://" not in where or (parts.password is None and parts.username is None):
        return where
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class TapeArchive:
    """The archive at ``where``: a directory (relative to the working directory) or a URL.

    A URL is checked at once (``ConfigError`` when pyarrow has no filesystem for it); a
    directory is created when the first file is written.
    """

    def __init__(self, where: str) -> None:
        if not where.strip():
            raise ConfigError("[archive] dir is empty: there is no tape archive")
        self.where = where
        self.is_url = "://" in where
        if self.is_url:
            _ = self._fs_root  # fail now, with the setting named, not at the first file

    def __repr__(self) -> str:
        return f"TapeArchive({shown(self.where)!r})"

    @property
    def location(self) -> str:
        """Where the archive is, for people: an absolute directory, or the URL (no password)."""
        return shown(self.where) if self.is_url else os.path.abspath(self.where)

    @cached_property
    def _fs_root(self) -> tuple[pafs.FileSystem, str]:
        import pyarrow.fs as pafs

        if not self.is_url:
            return pafs.LocalFileSystem(), os.path.abspath(self.where).rstrip("/")
        try:
            fs, root = pafs.FileSystem.from_uri(self.where)
        except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise ConfigError(
                f"[archive] dir: pyarrow cannot open {shown(self.where)!r}: {exc}"
            ) from None
        return fs, root.rstrip("/")

    def _full(self, path: str) -> str:
        return f"{self._fs_root[1]}/{path}"

    # -- writing ---------------------------------------------------------------------------

    def write(self, symbol: str, day: date, trades: TradeBatch) -> SealedFile:
        """Write a day's trades (in (ts, agg_id) order) and return what the manifest records.

        The file is written under a temporary name and moved into place, so a reader never
        meets half a file; storage errors are ``ArchiveUnavailable``."""
        if not len(trades):
            raise ValueError(f"{symbol} {day}: no trades to seal")
        data = encode(symbol, day, trades)
        path = file_path(symbol, day)
        fs, _ = self._fs_root
        target = self._full(path)
        temporary = f"{target}.tmp"
        try:
            fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            with fs.open_output_stream(temporary) as out:
                out.write(data)
            fs.move(temporary, target)
        except OSError as exc:
            raise ArchiveUnavailable(
                f"cannot write {path} in the tape archive ({self.location}): {exc}"
            ) from None
        return SealedFile(
            symbol, day, len(trades), int(trades.agg_id.min()), int(trades.agg_id.max()),
            len(data), hashlib.sha256(data).hexdigest(), path,
        )  # fmt: skip

    # -- reading ---------------------------------------------------------------------------

    def read(self, sealed: SealedFile) -> TradeBatch:
        """The day's trades from its file, checked against ``sealed`` first."""
        fs, _ = self._fs_root
        try:
            with fs.open_input_stream(self._full(sealed.path)) as stream:
                data = stream.readall()
        except FileNotFoundError:
            raise ArchiveFileRejected(f"{sealed.path} is missing") from None
        except OSError as exc:
            raise ArchiveFileRejected(f"{sealed.path} cannot be read: {exc}") from None
        if len(data) != sealed.bytes:
            raise ArchiveFileRejected(
                f"{sealed.path} has {len(data)} bytes, {sealed.bytes} were written"
            )
        if hashlib.sha256(data).hexdigest() != sealed.sha256:
            raise ArchiveFileRejected(f"{sealed.path} does not match its SHA-256 checksum")
        trades = decode(sealed.symbol, data, sealed.path)
        if len(trades) != sealed.rows:
            raise ArchiveFileRejected(
                f"{sealed.path} holds {len(trades)} trades, {sealed.rows} were sealed"
            )
        ids = (int(trades.agg_id.min()), int(trades.agg_id.max()))
        if ids != (sealed.first_id, sealed.last_id):
            raise ArchiveFileRejected(
                f"{sealed.path} holds ids {ids[0]}..{ids[1]}, "
                f"{sealed.first_id}..{sealed.last_id} were sealed"
            )
        return trades

    def files(self) -> dict[str, int]:
        """Every file under the archive's root, relative path → size (for ``archive status``)."""
        import pyarrow.fs as pafs

        fs, root = self._fs_root
        selector = pafs.FileSelector(f"{root}/agg_trades", recursive=True, allow_not_found=True)
        try:
            infos = fs.get_file_info(selector)
        except OSError as exc:
            raise ArchiveUnavailable(
                f"cannot list the tape archive ({self.location}): {exc}"
            ) from None
        return {
            info.path[len(root) + 1 :]: int(info.size)
            for info in infos
            if info.type == pafs.FileType.File
        }


def _schema(symbol: str, day: date) -> pa.Schema:
    import pyarrow as pa

    fields = [pa.field(name, pa.type_for_alias(kind), nullable=False)
              for name, kind in _KINDS.items()]  # fmt: skip
    return pa.schema(fields).with_metadata(
        {"arbengine.symbol": symbol, "arbengine.day": day.isoformat(), "arbengine.format": FORMAT}
    )


def encode(symbol: str, day: date, trades: TradeBatch) -> bytes:
    """A day's trades as the bytes of one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_arrays(
        [pa.array(getattr(trades, name)) for name in COLUMNS], schema=_schema(symbol, day)
    )
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        use_dictionary=["price", "qty"],
        column_encoding={"agg_id": "DELTA_BINARY_PACKED", "ts": "DELTA_BINARY_PACKED"},
        sorting_columns=[pq.SortingColumn(1), pq.SortingColumn(0)],
    )
    return bytes(sink.getvalue())


def decode(symbol: str, data: bytes, where: str) -> TradeBatch:
    """The trades of one file's bytes; anything but the archive's columns is refused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ArchiveFileRejected(f"{where} is not a readable Parquet file: {exc}") from None
    kinds = {f.name: str(f.type) for f in table.schema}
    if kinds != _KINDS:
        raise ArchiveFileRejected(f"{where} has columns {kinds}, not the archive's")
    columns: dict[str, Any] = {}
    for name in COLUMNS:
        values = table.column(name).to_numpy()
        # One row group comes back as a read-only view of arrow's buffer; batches from
        # PostgreSQL are ordinary arrays, and these must behave the same.
        columns[name] = values if values.flags.writeable else values.copy()
    return TradeBatch.of(
        symbol, columns["agg_id"], columns["ts"], columns["price"], columns["qty"], (), (),
        columns["is_buyer_maker"],
    )  # fmt: skip


def difference(expected: TradeBatch, found: TradeBatch) -> str | None:
    """The first way ``found`` differs from ``expected`` (floats compared bit for bit), or
    None when they hold the same trades in the same order."""
    if len(expected) != len(found):
        return f"{len(found)} trades instead of {len(expected)}"
    for name in COLUMNS:
        a, b = getattr(expected, name), getattr(found, name)
        if a.dtype == np.float64:
            a, b = a.view(np.int64), b.view(np.int64)
        unequal = np.flatnonzero(a != b)
        if len(unequal):
            at = int(unequal[0])
            return (
                f"{name} differs at trade {at} (id {int(expected.agg_id[at])}): "
                f"{getattr(expected, name)[at]!r} instead of {getattr(found, name)[at]!r}"
            )
    return None
