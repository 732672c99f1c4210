"""Backtest output: the summary table, ``trades.csv`` and a self-contained ``report.html``.

The report embeds its charts as inline SVG drawn by matplotlib (Agg, no
display), so it opens anywhere, offline, with no script or CDN.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from arbengine.trading.paper import PaperPosition
from arbengine.trading.stats import Summary, TradeOutcome, summarise

CSV_COLUMNS = (
    "strategy",
    "strategy_hash",
    "symbol",
    "direction",
    "entry_tick",
    "entry_time",
    "entry_price",
    "r_distance",
    "stop_loss",
    "take_profit_1",
    "take_profit_2",
    "quantity",
    "status",
    "exit_reason",
    "closed_at",
    "exits",
    "result_r",
    "result_usd",
    "fees_usd",
    "funding_usd",
)


@dataclass(frozen=True)
class SummaryRow:
    strategy: str
    symbol: str
    summary: Summary


def iso(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def outcome(position: PaperPosition) -> TradeOutcome:
    qty = position.quantity
    return TradeOutcome(
        entry_ms=position.entry_tick,
        close_ms=position.closed_at,
        result_r=position.result_r(),
        result_usd=position.result_usd(),
        funding_usd=position.funding_per_unit * qty,
    )


def summary_rows(positions: Sequence[PaperPosition], from_ms: int, to_ms: int) -> list[SummaryRow]:
    """One row per strategy and symbol, one per strategy (symbol ``*``), and the total."""
    groups: dict[tuple[str, str], list[PaperPosition]] = {}
    for p in positions:
        groups.setdefault((p.strategy, p.symbol), []).append(p)
        groups.setdefault((p.strategy, "*"), []).append(p)
    rows = [
        SummaryRow(strategy, symbol, summarise([outcome(p) for p in group], from_ms, to_ms))
        for (strategy, symbol), group in sorted(groups.items())
    ]
    return rows


def _fmt(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


TABLE_HEADER = (
    "strategy", "symbol", "trades", "open", "win%", "avg R", "total R", "PF",
    "exp $", "maxDD R", "Sharpe", "Sortino", "exposure%", "funding $",
)  # fmt: skip


def table_cells(row: SummaryRow) -> tuple[str, ...]:
    s = row.summary
    return (
        row.strategy,
        row.symbol,
        str(s.trades),
        str(s.open_trades),
        _fmt(None if s.win_rate is None else s.win_rate * 100, 1),
        _fmt(s.avg_r, 3),
        _fmt(s.total_r, 2),
        _fmt(s.profit_factor, 2),
        _fmt(s.expectancy_usd, 2),
        _fmt(s.max_drawdown_r, 2),
        _fmt(s.sharpe, 2),
        _fmt(s.sortino, 2),
        _fmt(s.exposure * 100, 1),
        _fmt(s.funding_usd, 2),
    )


def summary_table(rows: Sequence[SummaryRow]) -> str:
    body = [table_cells(r) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(TABLE_HEADER, *body, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(TABLE_HEADER, widths, strict=True))]
    for cells in body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)


def write_trades_csv(positions: Sequence[PaperPosition], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for p in sorted(positions, key=lambda p: (p.entry_tick, p.strategy, p.symbol)):
            exits = json.dumps(
                [
                    {"time": iso(f.ts), "ts": f.ts, "agg_id": f.agg_id, "price": f.price,
                     "fraction": f.fraction, "reason": f.reason}
                    for f in p.fills
                ]
            )  # fmt: skip
            writer.writerow(
                (
                    p.strategy, p.strategy_hash, p.symbol, p.direction, p.entry_tick,
                    iso(p.entry_tick), repr(p.entry_price), repr(p.r_distance),
                    repr(p.stop_loss), "" if p.take_profit_1 is None else repr(p.take_profit_1),
                    "" if p.take_profit_2 is None else repr(p.take_profit_2), repr(p.quantity),
                    "open" if p.is_open else "closed", p.exit_reason or "", iso(p.closed_at),
                    exits, repr(p.result_r()), repr(p.result_usd()),
                    repr(p.fees_per_unit * p.quantity), repr(p.funding_per_unit * p.quantity),
                )
            )  # fmt: skip


def _equity_svg(positions: Sequence[PaperPosition]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.dates import DateFormatter

    closed = sorted(
        (p for p in positions if p.closed_at is not None), key=lambda p: p.closed_at or 0
    )
    times = [datetime.fromtimestamp((p.closed_at or 0) / 1000, tz=UTC) for p in closed]
    equity: list[float] = []
    drawdown: list[float] = []
    total = peak = 0.0
    for p in closed:
        total += p.result_r()
        peak = max(peak, total)
        equity.append(total)
        drawdown.append(total - peak)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.step(times, equity, where="post", color="#1f6feb")
    top.set_ylabel("cumulative R")
    top.grid(alpha=0.3)
    bottom.fill_between(times, drawdown, step="post", color="#d1242f", alpha=0.4)
    bottom.set_ylabel("drawdown R")
    bottom.grid(alpha=0.3)
    bottom.xaxis.set_major_formatter(DateFormatter("%m-%d"))  # type: ignore[no-untyped-call]
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(
        buffer,
        format="svg",
        metadata={"Creator": None, "Date": None, "Format": None, "Type": None},
    )
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def write_report(
    positions: Sequence[PaperPosition],
    rows: Sequence[SummaryRow],
    path: Path,
    *,
    title: str,
    params: dict[str, str],
) -> None:
    header = "".join(f"<th>{html.escape(h)}</th>" for h in TABLE_HEADER)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in table_cells(r)) + "</tr>"
        for r in rows
    )
    meta = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in params.items())
    svg = (
        _equity_svg(positions) if any(p.closed_at for p in positions) else "<p>No closed trade.</p>"
    )
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #1f2328; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #d0d7de; padding: 4px 8px; text-align: right; }}
th:nth-child(-n+2), td:nth-child(-n+2) {{ text-align: left; }}
dt {{ font-weight: 600; float: left; clear: left; width: 9em; }}
dd {{ margin: 0 0 0.2em 9em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<dl>{meta}</dl>
<h2>Summary</h2>
<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>
<h2>Equity and drawdown (R, all strategies)</h2>
{svg}
</body></html>
"""
    path.write_text(document, encoding="utf-8")


def summary_json(rows: Sequence[SummaryRow]) -> list[dict[str, object]]:
    return [{"strategy": r.strategy, "symbol": r.symbol, **asdict(r.summary)} for r in rows]
