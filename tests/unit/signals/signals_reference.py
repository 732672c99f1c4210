"""A deliberately naive reading of SIGNALS.md, used as the oracle in tests.

Recomputes every trade-derived feature from the full list of trades at each
tick, with no incremental state, exact sums (math.fsum) and plain Python
loops. It is slow and obviously right; the engine is fast and must agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

HORIZON_MS = 26 * 3_600_000
CANDLE_MS = 300_000


@dataclass(frozen=True)
class Trade:
    agg_id: int
    time_ms: int
    price: float
    qty: float
    is_buyer_maker: bool


def dedup(trades: Iterable[Trade]) -> list[Trade]:
    """First occurrence of each agg_id, in (T, agg_id) order."""
    seen: dict[int, Trade] = {}
    for tr in trades:
        seen.setdefault(tr.agg_id, tr)
    return sorted(seen.values(), key=lambda tr: (tr.time_ms, tr.agg_id))


def reference_trade_features(
    trades: Sequence[Trade],
    t: int,
    *,
    fast_ms: int = 1_800_000,
    mid_ms: int = 14_400_000,
    day_ms: int = 86_400_000,
    max_staleness_ms: int = 300_000,
    atr_percentile_min_values: int = 288,
) -> dict[str, float]:
    """Every feature that depends on trades only (``trades`` already deduplicated, sorted)."""
    hist = [tr for tr in trades if t - HORIZON_MS <= tr.time_ms < t]
    out: dict[str, float] = {}
    price = None
    if hist and hist[-1].time_ms >= t - max_staleness_ms:
        price = hist[-1].price
        out["price"] = price

    def signed(tr: Trade) -> float:
        return -tr.qty if tr.is_buyer_maker else tr.qty

    for name, w in (("fast", fast_ms), ("mid", mid_ms), ("day", day_ms)):
        win = [tr for tr in hist if tr.time_ms >= t - w]
        cvd = math.fsum(signed(tr) for tr in win)
        vol = math.fsum(tr.qty for tr in win)
        pq = math.fsum(tr.price * tr.qty for tr in win)
        out[f"cvd_{name}"] = cvd
        if name != "day":
            out[f"flow_{name}"] = cvd / vol if vol > 0 else 0.0
        if vol > 0:
            vwap = pq / vol
            out[f"vwap_{name}"] = vwap
            if name != "day" and price is not None:
                out[f"vwap_dev_{name}"] = (price - vwap) / vwap
        if name == "fast":
            out["trades_fast"] = float(len(win))

    atr, values = reference_atr(hist, t)
    if atr is not None:
        out["atr"] = atr
        if price is not None:
            out["atr_pct"] = atr / price
        if len(values) >= atr_percentile_min_values:
            out["atr_percentile"] = 100.0 * sum(1 for a in values if a <= atr) / len(values)

    day = [tr for tr in hist if tr.time_ms >= t - day_ms]
    if len(day) >= 1000:
        notionals = sorted(tr.price * tr.qty for tr in day)
        k = -((-99 * len(notionals)) // 100)  # ⌈0.99·N⌉ without float rounding
        threshold = notionals[k - 1]
        out["large_threshold"] = threshold
        fast = [tr for tr in day if tr.time_ms >= t - fast_ms]
        buy = math.fsum(
            tr.price * tr.qty
            for tr in fast
            if not tr.is_buyer_maker and tr.price * tr.qty >= threshold
        )
        sell = math.fsum(
            tr.price * tr.qty for tr in fast if tr.is_buyer_maker and tr.price * tr.qty >= threshold
        )
        out["large_imbalance_fast"] = 0.0 if buy + sell == 0 else (buy - sell) / (buy + sell)
    return out


def reference_candles(hist: Sequence[Trade], t: int) -> list[tuple[int, float, float, float]]:
    """(index, high, low, close) of every closed candle from the first trade's candle."""
    if not hist:
        return []
    big_k = t // CANDLE_MS
    first = hist[0].time_ms // CANDLE_MS
    by_k: dict[int, list[Trade]] = {}
    for tr in hist:
        by_k.setdefault(tr.time_ms // CANDLE_MS, []).append(tr)
    out = []
    close = None
    for k in range(first, big_k):
        group = by_k.get(k)
        if group:
            h = max(tr.price for tr in group)
            lo = min(tr.price for tr in group)
            close = group[-1].price
            out.append((k, h, lo, close))
        else:
            assert close is not None
            out.append((k, close, close, close))
    return out


def reference_atr(hist: Sequence[Trade], t: int) -> tuple[float | None, list[float]]:
    candles = reference_candles(hist, t)
    trs: dict[int, float] = {}
    prev_close = None
    for k, h, lo, c in candles:
        if prev_close is None:
            trs[k] = h - lo
        else:
            trs[k] = max(h - lo, abs(h - prev_close), abs(lo - prev_close))
        prev_close = c
    big_k = t // CANDLE_MS

    def atr_at(close_k: int) -> float | None:
        ks = range(close_k - 14, close_k)
        if not all(k in trs for k in ks):
            return None
        return math.fsum(trs[k] for k in ks) / 14

    values = [a for c in range(big_k - 287, big_k + 1) if (a := atr_at(c)) is not None]
    return atr_at(big_k), values
