"""Market data derived from the tape: individual trades, klines, a 24 h ticker, a book.

Everything here is a pure function of the released aggTrade history (``TradeHistory``),
so it agrees with the aggTrade stream and REST by construction.

Individual trades: an aggTrade covers trade ids ``f..l`` at one price and side; its
quantity is split over those ids in whole step sizes, as evenly as possible, the
remainder one step each to the first ids (10 steps over 3 trades: 4, 3, 3). An
aggregate holding fewer steps than trades (about one in 10 000 on the generated tape)
gives its trailing trades a quantity of 0; the sum always equals the aggregate's.

Klines follow Binance: every bar from the first one the sim still has trades for to the
current, still open bar, with no gaps; a bar without a trade repeats the previous close as
its open, high, low and close with zero volume. Bars before the oldest trade kept (history
is bounded, see ``retention``) are not reported. ``1w`` bars open on Monday 00:00 UTC,
``1M`` bars on the first of the month; the others on multiples of their length since the
epoch.

The 24 h ticker covers the trades of the last 24 h the sim keeps: a sim that started
less than 24 h ago (or keeps less) reports over what it has, with ``openTime`` still
``closeTime − 24 h``; with no trade in the window, every price is the current bid, volumes
and ``count`` are 0 and ``firstId``/``lastId`` are -1. ``firstId``/``lastId``/``count``
count individual trades (the ids above), as Binance's do.

The book is synthetic: levels one tick apart from the best bid and ask (``quote``), the
best level's size the one ``bookTicker`` reports, growing one such size every 5 levels.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

import numpy as np

from arbengine.sim.symbols import SymbolSpec, fmt_units
from arbengine.sim.trade_history import TradeHistory, TradeHistoryColumns

MINUTE_MS = 60_000
DAY_MS = 86_400_000
INTERVAL_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": 7 * DAY_MS,
}
INTERVALS = (*INTERVAL_MS, "1M")
WEEK_OFFSET_MS = 4 * DAY_MS
"""1970-01-01 was a Thursday: weeks open 4 days later (Monday)."""
DEPTH_LIMITS = {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}
"""``/fapi/v1/depth`` limits Binance accepts, with their weights."""
DEPTH_STEP_LEVELS = 5


def klines_weight(limit: int) -> int:
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


# ---- individual trades ------------------------------------------------------------------


def split_qty(qty_units: int, n: int, step: int) -> list[int]:
    """``qty_units`` over ``n`` trades in whole steps, the remainder to the first ones."""
    steps, rest = divmod(qty_units // step, n)
    return [(steps + (1 if i < rest else 0)) * step for i in range(n)]


def trade_payloads(spec: SymbolSpec, cols: TradeHistoryColumns) -> list[bytes]:
    """``<symbol>@trade`` payloads (JSON bytes) for a tape slice: one per trade id."""
    pp, qp = spec.price_precision, spec.qty_precision
    head = b'{"e":"trade","E":%d,"T":%d,"s":"' + spec.symbol.encode() + b'","t":%d,"p":"'
    out: list[bytes] = []
    rows = zip(
        cols.a.tolist(),
        cols.t.tolist(),
        cols.price.tolist(),
        cols.qty.tolist(),
        cols.first.tolist(),
        cols.last.tolist(),
        cols.buyer_maker.tolist(),
        strict=True,
    )
    for a, t, p, q, first, last, m in rows:
        e = t + 1 + a % 5  # as the aggTrade's E
        price = fmt_units(p, pp).encode()
        side = b'","X":"MARKET","m":' + (b"true}" if m else b"false}")
        for i, share in enumerate(split_qty(q, last - first + 1, spec.step)):
            out.append(
                head % (e, t, first + i) + price + b'","q":"' + fmt_units(share, qp).encode() + side
            )
    return out


# ---- klines ------------------------------------------------------------------------------


def bar_open(t_ms: int, interval: str) -> int:
    if interval == "1M":
        d = dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC)
        return calendar.timegm((d.year, d.month, 1, 0, 0, 0)) * 1000
    size = INTERVAL_MS[interval]
    offset = WEEK_OFFSET_MS if interval == "1w" else 0
    return (t_ms - offset) // size * size + offset


def next_open(open_ms: int, interval: str) -> int:
    if interval == "1M":
        d = dt.datetime.fromtimestamp(open_ms / 1000, dt.UTC)
        year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return calendar.timegm((year, month, 1, 0, 0, 0)) * 1000
    return open_ms + INTERVAL_MS[interval]


def _exact_sum(values: np.ndarray[Any, np.dtype[np.int64]]) -> int:
    """Sum without int64 overflow (price × qty products summed over months of trades)."""
    return sum(int(values[i : i + 100_000].sum()) for i in range(0, len(values), 100_000))


def klines(
    tape: TradeHistory,
    spec: SymbolSpec,
    interval: str,
    start_ms: int | None,
    end_ms: int | None,
    limit: int,
    now_ms: int,
) -> list[list[Any]]:
    """``GET /fapi/v1/klines`` rows (12 fields each), oldest first."""
    cols = tape.released_cols()
    if not len(cols):
        return []
    lo = bar_open(int(cols.t[0]), interval)
    if start_ms is not None:
        first = bar_open(start_ms, interval)
        lo = max(lo, first if first == start_ms else next_open(first, interval))
    hi = bar_open(now_ms if end_ms is None else min(end_ms, now_ms), interval)
    opens: list[int] = []
    t = lo
    while t <= hi:
        opens.append(t)
        t = next_open(t, interval)
    opens = opens[:limit] if start_ms is not None else opens[-limit:]
    if not opens:
        return []
    bounds = [*opens, next_open(opens[-1], interval)]
    idx = np.searchsorted(cols.t, np.array(bounds, np.int64), side="left").tolist()
    pp, qp = spec.price_precision, spec.qty_precision
    rows: list[list[Any]] = []
    for k, open_ms in enumerate(opens):
        i, j = idx[k], idx[k + 1]
        close_ms = bounds[k + 1] - 1
        if i == j:
            if i == 0:
                continue  # before the oldest trade kept
            prev = fmt_units(int(cols.price[i - 1]), pp)
            zero_q, zero_quote = fmt_units(0, qp), fmt_units(0, pp + qp)
            rows.append([open_ms, prev, prev, prev, prev, zero_q, close_ms, zero_quote, 0])
            rows[-1] += [zero_q, zero_quote, "0"]
            continue
        price, qty = cols.price[i:j], cols.qty[i:j]
        taker_buy = cols.buyer_maker[i:j] == 0
        quote = price * qty
        rows.append(
            [
                open_ms,
                fmt_units(int(price[0]), pp),
                fmt_units(int(price.max()), pp),
                fmt_units(int(price.min()), pp),
                fmt_units(int(price[-1]), pp),
                fmt_units(int(qty.sum()), qp),
                close_ms,
                fmt_units(_exact_sum(quote), pp + qp),
                int((cols.last[i:j] - cols.first[i:j] + 1).sum()),
                fmt_units(int(qty[taker_buy].sum()), qp),
                fmt_units(_exact_sum(quote[taker_buy]), pp + qp),
                "0",
            ]
        )
    return rows


# ---- 24 h ticker -------------------------------------------------------------------------


def ticker_24hr(
    tape: TradeHistory, spec: SymbolSpec, bid_units: int, now_ms: int
) -> dict[str, Any]:
    pp, qp = spec.price_precision, spec.qty_precision
    open_time = now_ms - DAY_MS
    lo = tape.index_of_time(open_time + 1)
    cols = tape.cols(lo, tape.released)
    if not len(cols):
        bid = fmt_units(bid_units, pp)
        return {
            "symbol": spec.symbol,
            "priceChange": fmt_units(0, pp),
            "priceChangePercent": "0.000",
            "weightedAvgPrice": bid,
            "lastPrice": bid,
            "lastQty": fmt_units(0, qp),
            "openPrice": bid,
            "highPrice": bid,
            "lowPrice": bid,
            "volume": fmt_units(0, qp),
            "quoteVolume": fmt_units(0, pp + qp),
            "openTime": open_time,
            "closeTime": now_ms,
            "firstId": -1,
            "lastId": -1,
            "count": 0,
        }
    price, qty = cols.price, cols.qty
    first_p, last_p = int(price[0]), int(price[-1])
    volume = int(qty.sum())
    quote = _exact_sum(price * qty)
    first_id, last_id = int(cols.first[0]), int(cols.last[-1])
    last_n = last_id - int(cols.first[-1]) + 1
    last_qty = split_qty(int(qty[-1]), last_n, spec.step)[-1]
    change = last_p - first_p
    # quote / volume in price units: quote is in 10**-(pp+qp), volume in 10**-qp
    weighted = (2 * quote + volume) // (2 * volume) if volume else last_p
    return {
        "symbol": spec.symbol,
        "priceChange": fmt_units(change, pp),
        "priceChangePercent": f"{change * 100 / first_p:.3f}",
        "weightedAvgPrice": fmt_units(weighted, pp),
        "lastPrice": fmt_units(last_p, pp),
        "lastQty": fmt_units(last_qty, qp),
        "openPrice": fmt_units(first_p, pp),
        "highPrice": fmt_units(int(price.max()), pp),
        "lowPrice": fmt_units(int(price.min()), pp),
        "volume": fmt_units(volume, qp),
        "quoteVolume": fmt_units(quote, pp + qp),
        "openTime": open_time,
        "closeTime": now_ms,
        "firstId": first_id,
        "lastId": last_id,
        "count": last_id - first_id + 1,
    }


# ---- order book --------------------------------------------------------------------------


def top_size(spec: SymbolSpec) -> int:
    """The best level's size in quantity units (also ``bookTicker``'s)."""
    return max(spec.min_qty, 10 * spec.step) * 7


def depth(
    spec: SymbolSpec, bid_units: int, ask_units: int, limit: int, now_ms: int
) -> dict[str, Any]:
    pp, qp = spec.price_precision, spec.qty_precision
    top = top_size(spec)

    def size(level: int) -> str:
        return fmt_units(top * (1 + level // DEPTH_STEP_LEVELS), qp)

    bids = [
        [fmt_units(bid_units - i * spec.tick, pp), size(i)]
        for i in range(limit)
        if bid_units - i * spec.tick > 0
    ]
    asks = [[fmt_units(ask_units + i * spec.tick, pp), size(i)] for i in range(limit)]
    return {"lastUpdateId": now_ms, "E": now_ms, "T": now_ms, "bids": bids, "asks": asks}
