"""SQL for the engine's outputs (evaluations, signals, paper trades) and its restart state.

Idempotent like every write: an evaluation or a signal is stored once per
(strategy, symbol, tick); a paper trade is one row per (strategy, symbol,
entry tick), updated as it fills.

The column lists are the fields of the row types (``domain/engine_rows.py``),
in their order; a field holding a mapping, a list or a struct is a ``jsonb``
column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
import orjson

from arbengine.domain.engine_rows import EvaluationRow, PaperTradeExits, PaperTradeRow, SignalRow

_JSON_TYPES = (
    msgspec.inspect.DictType,
    msgspec.inspect.ListType,
    msgspec.inspect.StructType,
    msgspec.inspect.DataclassType,
)


def _struct_as_dict(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        return msgspec.structs.asdict(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def _json(value: Any) -> str:
    # orjson with numpy scalars as numpy formats them: the stored text stays what it always was.
    return orjson.dumps(value, default=_struct_as_dict, option=orjson.OPT_SERIALIZE_NUMPY).decode()


class _Table:
    """A table whose columns are one row type's fields: its INSERT and a row's bind values."""

    def __init__(self, name: str, row_type: type[msgspec.Struct]) -> None:
        info = msgspec.inspect.type_info(row_type)
        assert isinstance(info, msgspec.inspect.StructType)
        self.columns: tuple[str, ...] = tuple(f.name for f in info.fields)
        self._json = tuple(isinstance(f.type, _JSON_TYPES) for f in info.fields)
        placeholders = ", ".join(
            f"${i}::jsonb" if is_json else f"${i}" for i, is_json in enumerate(self._json, 1)
        )
        self.insert = f"INSERT INTO {name} ({', '.join(self.columns)}) VALUES ({placeholders})"

    def values(self, row: msgspec.Struct) -> tuple[Any, ...]:
        return tuple(
            _json(v) if is_json else v
            for v, is_json in zip(msgspec.structs.astuple(row), self._json, strict=True)
        )


_EVALUATIONS = _Table("signal_indicators", EvaluationRow)
_SIGNALS = _Table("signal_logs", SignalRow)
_PAPER = _Table("paper_trades", PaperTradeRow)
_PAPER_KEY = ("strategy", "symbol", "entry_tick")

_INSERT_EVALUATIONS = f"{_EVALUATIONS.insert} ON CONFLICT (strategy, symbol, tick) DO NOTHING"
_INSERT_SIGNALS = f"{_SIGNALS.insert} ON CONFLICT (strategy, symbol, tick) DO NOTHING"
_UPSERT_PAPER = (
    f"{_PAPER.insert} ON CONFLICT ({', '.join(_PAPER_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _PAPER.columns if c not in _PAPER_KEY)
    + ", updated_at = now()"
)


async def insert_evaluations(conn: asyncpg.Connection, rows: Sequence[EvaluationRow]) -> None:
    if rows:
        await conn.executemany(_INSERT_EVALUATIONS, [_EVALUATIONS.values(r) for r in rows])


async def insert_signals(conn: asyncpg.Connection, rows: Sequence[SignalRow]) -> None:
    if rows:
        await conn.executemany(_INSERT_SIGNALS, [_SIGNALS.values(r) for r in rows])


async def upsert_paper_trades(conn: asyncpg.Connection, rows: Sequence[PaperTradeRow]) -> None:
    if rows:
        await conn.executemany(_UPSERT_PAPER, [_PAPER.values(r) for r in rows])


def _paper_trade(record: asyncpg.Record) -> PaperTradeRow:
    fields = dict(record)
    fields["exits"] = msgspec.json.decode(fields["exits"], type=PaperTradeExits)
    return msgspec.convert(fields, PaperTradeRow)


async def last_evaluated_ticks(conn: asyncpg.Connection) -> dict[tuple[str, str], int]:
    rows = await conn.fetch(
        "SELECT strategy, symbol, max(tick) AS tick FROM signal_indicators GROUP BY 1, 2"
    )
    return {(r["strategy"], r["symbol"]): int(r["tick"]) for r in rows}


async def last_fired_ticks(conn: asyncpg.Connection) -> dict[tuple[str, str], int]:
    rows = await conn.fetch(
        "SELECT strategy, symbol, max(tick) AS tick FROM signal_logs GROUP BY 1, 2"
    )
    return {(r["strategy"], r["symbol"]): int(r["tick"]) for r in rows}


async def open_paper_trades(conn: asyncpg.Connection) -> list[PaperTradeRow]:
    """The open paper trades, as the engine wrote them (a restart resumes them)."""
    rows = await conn.fetch(
        f"SELECT {', '.join(_PAPER.columns)} FROM paper_trades WHERE status = 'open' "
        "ORDER BY entry_tick"
    )
    return [_paper_trade(r) for r in rows]
