"""Backtest output files: trades.csv round-trips the trades, report.html is self-contained."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from arbengine.trading.paper import ExitRule, PaperBook, open_position
from arbengine.trading.report import (
    summary_rows,
    summary_table,
    write_report,
    write_trades_csv,
)

T0 = 1_767_225_600_000


def positions() -> list:
    book = PaperBook()
    rule = ExitRule(sl_atr=1.0, tp2_atr=2.0)
    for i, (symbol, d) in enumerate((("BTCUSDT", 1), ("ETHUSDT", -1), ("BTCUSDT", -1))):
        book.add(
            open_position(
                strategy="v52",
                strategy_hash="abc",
                symbol=symbol,
                direction=d,
                tick=T0 + i * 60_000,
                price=100.0,
                atr=1.0,
                rule=rule,
            )
        )
    book.on_trades("BTCUSDT", [1, 2], [T0 + 200_000, T0 + 300_000], [102.0, 102.0])
    book.on_trades("ETHUSDT", [1], [T0 + 200_000], [101.0])
    return [*book.closed, *book.open]


def test_csv_and_html(tmp_path: Path) -> None:
    trades = positions()
    rows = summary_rows(trades, T0, T0 + 86_400_000)
    assert [(r.strategy, r.symbol, r.summary.trades) for r in rows] == [
        ("v52", "*", 3),
        ("v52", "BTCUSDT", 2),
        ("v52", "ETHUSDT", 1),
    ]
    total = rows[0].summary
    # BTC long +2R (TP2), BTC short -2R (through its stop at 102 → −2R), ETH short -1R
    assert total.total_r == -1.0
    table = summary_table(rows)
    assert table.splitlines()[0].split()[:3] == ["strategy", "symbol", "trades"]

    write_trades_csv(trades, tmp_path / "trades.csv")
    with (tmp_path / "trades.csv").open() as handle:
        read = list(csv.DictReader(handle))
    assert len(read) == 3
    assert {r["exit_reason"] for r in read} == {"tp2", "sl"}
    assert all(json.loads(r["exits"])[0]["reason"] == r["exit_reason"] for r in read)
    assert sorted(float(r["result_r"]) for r in read) == [-2.0, -1.0, 2.0]

    write_report(trades, rows, tmp_path / "report.html", title="v52", params={"from": "x"})
    text = (tmp_path / "report.html").read_text()
    assert "<svg" in text
    # Self-contained: nothing is loaded from anywhere (namespace URIs are only names).
    assert "<script" not in text
    assert "<link" not in text
    assert 'src="http' not in text
    assert 'href="http' not in text
