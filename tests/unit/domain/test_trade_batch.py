"""TradeBatch: the one columnar trade batch, built from sequences or arrays, with trade ids
optional (a replay does not load them) and rows only for a batch that can be stored."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from arbengine.domain.market import TradeBatch


def test_of_coerces_sequences_and_iterators_to_typed_columns() -> None:
    batch = TradeBatch.of(
        "BTCUSDT", (1, 2), iter([1_000, 1_001]), [100, 101], [0.5, 1], [10, 20], [11, 21],
        [0, 1], received_ms=5,
    )  # fmt: skip
    assert [c.dtype for c in (batch.agg_id, batch.ts, batch.price, batch.qty)] == [
        np.int64, np.int64, np.float64, np.float64
    ]  # fmt: skip
    assert batch.is_buyer_maker.tolist() == [False, True]
    assert (len(batch), batch.has_trade_ids, batch.received_ms) == (2, True, 5)


def test_of_uses_arrays_of_the_right_dtype_as_they_are() -> None:
    ids = np.arange(3, dtype=np.int64)
    price = np.ones(3)
    batch = TradeBatch.of("X", ids, ids, price, price, ids, ids, np.zeros(3, np.bool_))
    assert batch.agg_id is ids
    assert batch.price is price


def test_rows_are_python_values_in_agg_trades_column_order() -> None:
    batch = TradeBatch.of("BTCUSDT", [7], [1_000], [100.5], [0.25], [70], [71], [True])
    (row,) = batch.rows()
    assert row == ("BTCUSDT", 7, 1_000, 100.5, 0.25, 70, 71, True)
    assert [type(v) for v in row] == [str, int, int, float, float, int, int, bool]


def test_trade_ids_not_loaded_are_empty_kept_so_by_take_and_refused_by_rows() -> None:
    batch = TradeBatch.of("ETHUSDT", [1, 2, 3], [10, 20, 30], [1.0] * 3, [1.0] * 3, [], [],
                          [False] * 3)  # fmt: skip
    assert not batch.has_trade_ids
    part = batch.take(np.array([2, 0]))
    assert (part.agg_id.tolist(), part.ts.tolist()) == ([3, 1], [30, 10])
    assert not part.has_trade_ids
    assert batch.take(slice(1, 3)).agg_id.tolist() == [2, 3]
    with pytest.raises(ValueError, match="ETHUSDT: trade ids were not loaded, it cannot be stored"):
        batch.rows()


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (([1, 2], [1], [1.0, 1.0], [1.0, 1.0], [1, 2], [1, 2], [False, False]),
         "TradeBatch.ts has 1 values for 2 trades"),
        (([1], [1], [1.0], [1.0], [1, 2], [1, 2], [False]),
         "TradeBatch.first_trade_id has 2 values for 1 trades (empty means not loaded)"),
        (([1], [1], [1.0], [1.0], [1], [], [False]),
         "TradeBatch.first_trade_id and last_trade_id: both loaded or neither"),
    ],
)  # fmt: skip
def test_columns_of_other_lengths_are_refused(
    columns: tuple[list[object], ...], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        TradeBatch.of("X", *columns)  # type: ignore[arg-type]


def test_columns_must_be_typed_arrays() -> None:
    ids = np.arange(2, dtype=np.int64)
    price: Any = [1.0, 2.0]
    with pytest.raises(TypeError, match=re.escape("TradeBatch.price must be a 1-D float64 array")):
        TradeBatch("X", ids, ids, price, np.ones(2), ids, ids, np.zeros(2, np.bool_))
