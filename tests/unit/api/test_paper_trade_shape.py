"""The API's paper trade is the stored paper-trade row (``domain/engine_rows.py``), stated
once: its public schema may differ only where it says so here."""

from __future__ import annotations

import msgspec

from arbengine.api.schemas import PaperTrade
from arbengine.domain.engine_rows import PaperTradeRow

TABLE_ONLY = {"id": msgspec.inspect.IntType(), "updated_at": msgspec.inspect.DateTimeType()}
"""Columns the table adds to the row: its key and when the row was last written."""
NOT_PUBLISHED = {"last_agg_id"}
"""Where a position resumes after a restart: internal."""


def fields(struct: type[msgspec.Struct]) -> dict[str, msgspec.inspect.Type]:
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    return {f.encode_name: f.type for f in info.fields}


def test_the_api_paper_trade_is_the_stored_row() -> None:
    api, row = fields(PaperTrade), fields(PaperTradeRow)
    assert set(api) == (set(row) - NOT_PUBLISHED) | set(TABLE_ONLY)
    for name, kind in TABLE_ONLY.items():
        assert api[name] == kind, name
    for name in set(row) - NOT_PUBLISHED:
        if name == "exits":  # published as the stored JSON, described in the README
            assert api[name] == msgspec.inspect.AnyType()
        else:
            assert api[name] == row[name], name
