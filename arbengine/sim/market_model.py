"""The market model: a seeded, synchronous generator of everything Binance publishes.

Why it looks the way it does:

- **Deterministic for a seed, whatever the pacing.** Each symbol has its own
  numpy Generator (seeded from ``(seed, crc32(symbol))``) and the model advances
  in fixed one-second blocks of simulated time, each block generated in full
  the first time the clock enters it. The tape is therefore a function of the
  seed and the configuration only: a realtime run, a run at 50×, a manual test
  advancing in odd steps all produce the same trades, ids and prices.
- **Something for the features to find.** Calm and volatile regimes (Markov,
  switching at block boundaries) scale volatility, trade rate, liquidation odds
  and tail size. Taker side is a persistent Markov chain biased by an
  Ornstein-Uhlenbeck order-flow state, and each trade moves the mid by a
  signed square-root impact, so cumulative volume delta leads price. Sizes are
  log-normal with a Pareto tail (large orders).
- **Self-consistent side series.** Mark = index × (1 + premium), funding rate
  from a running premium average clamped around the 0.01 % interest rate,
  funding settled every ``funding_interval_hours`` on UTC boundaries, open
  interest and long/short ratios on 5-minute boundaries, taker buy/sell volume
  summed from the actual trades, one liquidation snapshot at most per second
  (Binance's forceOrder stream pushes at most the latest per 1000 ms).

Nothing here touches asyncio; the server calls ``advance(t)`` and publishes
what it returns.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from arbengine.sim.release_series import Series
from arbengine.sim.retention import MIN_COMPACT_ROWS, Retention
from arbengine.sim.symbols import SymbolSpec, fmt_decimal, fmt_float, fmt_units
from arbengine.sim.trade_history import TradeHistory, TradeHistoryColumns

BLOCK_MS = 1_000
FIVE_MIN_MS = 300_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
INTEREST_RATE = 0.0001
HIST_PERIODS: dict[str, int] = {
    "5m": 1,
    "15m": 3,
    "30m": 6,
    "1h": 12,
    "2h": 24,
    "4h": 48,
    "6h": 72,
    "12h": 144,
    "1d": 288,
}
HIST_KINDS = (
    "openInterestHist",
    "globalLongShortAccountRatio",
    "topLongShortPositionRatio",
    "topLongShortAccountRatio",
    "takerlongshortRatio",
)


@dataclass(frozen=True, slots=True)
class MarkPoint:
    symbol: str
    t: int
    mark: float
    index: float
    settle: float
    rate: float
    next_funding: int


@dataclass(frozen=True, slots=True)
class LiquidationEvent:
    symbol: str
    t: int
    """Order time ``o.T``."""
    side: str
    price: int
    """Order (bankruptcy) price, in price units."""
    avg_price: int
    qty: int
    pushed: int
    """When the stream pushes it (event time ``E``): Binance sends at most the latest
    liquidation per symbol per 1000 ms, as a snapshot after its order time."""


@dataclass(frozen=True, slots=True)
class SimFunding:
    symbol: str
    t: int
    rate: float
    mark: float


@dataclass(slots=True)
class SymbolRelease:
    """What one symbol published between two clock positions."""

    symbol: str
    lo: int
    hi: int
    """Newly released tape rows ``[lo, hi)``."""
    marks: list[MarkPoint] = field(default_factory=list)
    liquidations: list[LiquidationEvent] = field(default_factory=list)
    fundings: list[SimFunding] = field(default_factory=list)


@dataclass(slots=True)
class Release:
    t_ms: int
    symbols: list[SymbolRelease]
    passthrough: list[tuple[str, bytes, int]] | None = None
    """Replay: recorded ``(stream, payload, agg id or -1)`` in file order, published verbatim."""


def next_funding_after(t_ms: int, interval_hours: int) -> int:
    step = interval_hours * HOUR_MS
    return (t_ms // step + 1) * step


def iso_ms(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------------------------
# Per-symbol storage shared by the synthetic and replayed markets


class SymbolBook:
    """Everything published about one symbol, each series with its release watermark."""

    def __init__(self, spec: SymbolSpec) -> None:
        self.spec = spec
        self.tape = TradeHistory(spec.price_precision, spec.qty_precision)
        self.marks = Series(
            {
                "mark": np.float64,
                "index": np.float64,
                "settle": np.float64,
                "rate": np.float64,
                "next_funding": np.int64,
                "cb_bps": np.float64,
                "oi": np.float64,
            }
        )
        self.hist = Series(
            {
                "oi": np.float64,
                "oi_value": np.float64,
                "global_ls": np.float64,
                "top_pos_ls": np.float64,
                "top_acc_ls": np.float64,
                "buy_vol": np.float64,
                "sell_vol": np.float64,
            }
        )
        self.funding: list[SimFunding] = []
        self.funding_released = 0
        self.liquidations: list[LiquidationEvent] = []
        self.liq_released = 0
        self.liq_forgotten = 0
        """Published liquidations dropped from ``liquidations`` to bound memory."""
        self.moved_after_id: int | None = None
        """The last trade released before a price move (``move``): until a later trade is,
        the best bid and ask follow the moved mark, not that trade."""

    @property
    def liquidations_published(self) -> int:
        return self.liq_forgotten + self.liq_released

    @property
    def nbytes(self) -> int:
        """Memory held by the columnar history (tape, marks, 5-minute rows)."""
        return self.tape.nbytes + self.marks.nbytes + self.hist.nbytes

    def forget_before(self, now_ms: int, retention: Retention) -> None:
        """Drop what the retention windows no longer cover (see ``retention``).

        Called at the start of a clock step, before ``release_until``, so the row
        ranges a release reports stay valid while the step publishes them.
        """
        self.tape.forget_before(now_ms - retention.trades_ms, retention.max_trades)
        self.marks.forget_before(now_ms - retention.trades_ms)
        self.hist.forget_before(now_ms - retention.series_ms)
        cutoff = now_ms - retention.series_ms
        old = 0
        while old < self.funding_released and self.funding[old].t < cutoff:
            old += 1
        if old:
            del self.funding[:old]
            self.funding_released -= old
        if self.liq_released >= MIN_COMPACT_ROWS:
            del self.liquidations[: self.liq_released]
            self.liq_forgotten += self.liq_released
            self.liq_released = 0

    def move(self, factor: float, now_ms: int) -> None:
        """Move the price level by ``factor`` now: what was generated ahead of the clock is
        repriced, and a mark at the new level is released at ``now_ms`` (so REST and the
        account see it at once; the streams from the next trade and the next second)."""
        self.tape.reprice_unreleased(factor, self.spec.tick)
        self.marks.scale_unreleased(("mark", "index", "settle"), factor)
        i = self.marks.released - 1
        row = {name: self.marks.value(name, i) for name in ("rate", "next_funding", "cb_bps", "oi")}
        for name in ("mark", "index", "settle"):
            row[name] = float(self.marks.value(name, i)) * factor
        self.marks.insert_released(max(now_ms, int(self.marks.value("t", i))), **row)
        self.moved_after_id = self.tape.last_id

    def release_until(self, t_ms: int) -> SymbolRelease:
        lo, hi = self.tape.release_until(t_ms)
        rel = SymbolRelease(self.spec.symbol, lo, hi)
        mlo, mhi = self.marks.release_until(t_ms)
        rel.marks = [self.mark_point(i) for i in range(mlo, mhi)]
        self.hist.release_until(t_ms)
        while (
            self.funding_released < len(self.funding)
            and self.funding[self.funding_released].t <= t_ms
        ):
            rel.fundings.append(self.funding[self.funding_released])
            self.funding_released += 1
        while (
            self.liq_released < len(self.liquidations)
            and self.liquidations[self.liq_released].pushed <= t_ms
        ):
            rel.liquidations.append(self.liquidations[self.liq_released])
            self.liq_released += 1
        return rel

    # -- queries (released data only) ----------------------------------------------------

    def mark_point(self, i: int) -> MarkPoint:
        m = self.marks
        return MarkPoint(
            self.spec.symbol,
            int(m.value("t", i)),
            float(m.value("mark", i)),
            float(m.value("index", i)),
            float(m.value("settle", i)),
            float(m.value("rate", i)),
            int(m.value("next_funding", i)),
        )

    def latest_mark(self) -> MarkPoint:
        return self.mark_point(self.marks.released - 1)

    def quote(self) -> tuple[int, int]:
        """Best bid and ask (price units) implied by the last trade's side."""
        tick = self.spec.tick
        last = self.tape.last_trade()
        if last is None or self.tape.last_id == self.moved_after_id:
            mark = self.latest_mark().mark
            bid = int(mark * self.spec.price_scale) // tick * tick
            return bid, bid + tick
        _, price, buyer_maker = last
        if buyer_maker:  # a taker sold into the bid
            return price, price + tick
        return price - tick, price

    def open_interest(self) -> tuple[float, int]:
        i = self.marks.released - 1
        return float(self.marks.value("oi", i)), int(self.marks.value("t", i))

    def premium_index(self, t_ms: int) -> dict[str, Any]:
        p = self.latest_mark()
        return {
            "symbol": self.spec.symbol,
            "markPrice": fmt_float(p.mark),
            "indexPrice": fmt_float(p.index),
            "estimatedSettlePrice": fmt_float(p.settle),
            "lastFundingRate": fmt_float(p.rate),
            "interestRate": fmt_float(INTEREST_RATE),
            "nextFundingTime": p.next_funding,
            "time": p.t,
        }

    def funding_rows(
        self, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[dict[str, Any]]:
        rows = self.funding[: self.funding_released]
        if start_ms is not None:
            rows = [r for r in rows if r.t >= start_ms]
        if end_ms is not None:
            rows = [r for r in rows if r.t <= end_ms]
        rows = rows[:limit] if start_ms is not None else rows[-limit:]
        return [
            {
                "symbol": self.spec.symbol,
                "fundingRate": fmt_float(r.rate),
                "fundingTime": r.t,
                "markPrice": fmt_float(r.mark),
            }
            for r in rows
        ]

    def hist_rows(
        self,
        kind: str,
        period: str,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        now_ms: int,
    ) -> list[dict[str, Any]]:
        """``/futures/data/<kind>`` rows: one per period boundary, the last 30 days only."""
        k = HIST_PERIODS[period]
        h = self.hist
        t = h.col("t").astype(np.int64)
        if len(t) == 0:
            return []
        buy = np.cumsum(h.col("buy_vol").astype(np.float64))
        sell = np.cumsum(h.col("sell_vol").astype(np.float64))
        idx = np.nonzero((t % (k * FIVE_MIN_MS) == 0) & (t > now_ms - 30 * DAY_MS))[0]
        if start_ms is not None:
            idx = idx[t[idx] >= start_ms]
        if end_ms is not None:
            idx = idx[t[idx] <= end_ms]
        idx = idx[:limit] if start_ms is not None else idx[-limit:]
        sym = self.spec.symbol
        out: list[dict[str, Any]] = []
        for i in idx.tolist():
            ts = int(t[i])
            if kind == "openInterestHist":
                out.append(
                    {
                        "symbol": sym,
                        "sumOpenInterest": fmt_float(float(h.value("oi", i))),
                        "sumOpenInterestValue": fmt_float(float(h.value("oi_value", i))),
                        "timestamp": ts,
                    }
                )
            elif kind == "takerlongshortRatio":
                j = i - k
                bv = float(buy[i] - (buy[j] if j >= 0 else 0.0))
                sv = float(sell[i] - (sell[j] if j >= 0 else 0.0))
                out.append(
                    {
                        "buySellRatio": fmt_float(bv / sv if sv > 0 else 0.0, 4),
                        "buyVol": fmt_float(bv, 4),
                        "sellVol": fmt_float(sv, 4),
                        "timestamp": ts,
                    }
                )
            else:
                column = {
                    "globalLongShortAccountRatio": "global_ls",
                    "topLongShortPositionRatio": "top_pos_ls",
                    "topLongShortAccountRatio": "top_acc_ls",
                }[kind]
                ratio = float(h.value(column, i))
                long_share = ratio / (1.0 + ratio)
                out.append(
                    {
                        "symbol": sym,
                        "longShortRatio": fmt_float(ratio, 4),
                        "longAccount": fmt_float(long_share, 4),
                        "shortAccount": fmt_float(1.0 - long_share, 4),
                        "timestamp": ts,
                    }
                )
        return out

    def coinbase_ticker(self, t_ms: int, trade_rate: float) -> dict[str, Any]:
        """Coinbase's ticker: its ``time`` and price are those of the last spot trade, which
        is often seconds old (a client must not take ``time`` for when it learnt the price)."""
        last_ms = coinbase_last_trade_ms(self.spec.symbol, t_ms)
        seconds_back = t_ms // 1000 - last_ms // 1000
        i = max(0, self.marks.released - 1 - seconds_back)
        index = float(self.marks.value("index", i))
        bps = float(self.marks.value("cb_bps", i))
        tick = self.spec.coinbase_tick
        price = Decimal(repr(index * (1.0 + bps / 1e4))).quantize(tick)
        volume = trade_rate * 86_400 * self.spec.median_notional * 2.0 / max(index, 1e-9) * 0.3
        last = self.tape.last_trade()
        size = (
            Decimal(1).scaleb(-self.spec.qty_precision)
            if last is None
            else Decimal(
                int(self.tape.cols(self.tape.released - 1, self.tape.released).qty[0])
            ).scaleb(-self.spec.qty_precision)
        )
        return {
            "ask": f"{price + tick:f}",
            "bid": f"{price:f}",
            "volume": fmt_float(volume, 8),
            "trade_id": last_ms // 10,
            "price": f"{price:f}",
            "size": fmt_decimal(size, 8),
            "time": iso_ms(last_ms),
        }


COINBASE_TRADE_ODDS = 0.4
"""The chance that a second holds a spot trade on Coinbase (so its last trade is usually
0–3 s old): deterministic per symbol and second, the same for every client and run."""


def coinbase_last_trade_ms(symbol: str, t_ms: int) -> int:
    """Time of the last Coinbase spot trade at or before ``t_ms``."""
    seed = zlib.crc32(symbol.encode())
    second = t_ms // 1000
    for back in range(60):
        s = second - back
        h = ((s * 2_654_435_761) ^ seed) * 2_246_822_519 & 0xFFFF_FFFF
        if h % 1000 < COINBASE_TRADE_ODDS * 1000:
            at = s * 1000 + (h >> 12) % 1000
            if at <= t_ms:
                return at
    return (second - 60) * 1000


# ---------------------------------------------------------------------------------------------
# Indicators: open interest, long/short ratios, Coinbase premium


class IndicatorModel:
    """Slow series that no trade determines: OU processes stepped per second / per 5 minutes."""

    def __init__(self, spec: SymbolSpec, rng: np.random.Generator, price: float) -> None:
        self.rng = rng
        self.oi = spec.open_interest_usd / price
        self.global_ls = math.log(1.6)
        self.top_pos_ls = math.log(1.15)
        self.top_acc_ls = math.log(1.35)
        self.cb_bps = 0.0
        self.buy = 0.0
        self.sell = 0.0
        self.qty_scale = spec.qty_scale

    def on_second(self, volatile: bool, liquidated_qty: float) -> None:
        z = self.rng.standard_normal(2)
        sig = 2.5e-4 if volatile else 4e-5
        self.oi = max(self.oi * math.exp(sig * float(z[0])) - liquidated_qty, 1.0)
        self.cb_bps += -0.01 * self.cb_bps + (0.8 if volatile else 0.25) * float(z[1])

    def on_trades(self, buy_qty: float, sell_qty: float) -> None:
        self.buy += buy_qty
        self.sell += sell_qty

    def five_minute_row(self, mark: float, volatile: bool) -> dict[str, float]:
        z = self.rng.standard_normal(3)
        s = 0.06 if volatile else 0.03
        self.global_ls += 0.05 * (math.log(1.6) - self.global_ls) + s * float(z[0])
        self.top_pos_ls += 0.05 * (math.log(1.15) - self.top_pos_ls) + s * float(z[1])
        self.top_acc_ls += 0.05 * (math.log(1.35) - self.top_acc_ls) + s * float(z[2])
        row = {
            "oi": self.oi,
            "oi_value": self.oi * mark,
            "global_ls": math.exp(self.global_ls),
            "top_pos_ls": math.exp(self.top_pos_ls),
            "top_acc_ls": math.exp(self.top_acc_ls),
            "buy_vol": self.buy,
            "sell_vol": self.sell,
        }
        self.buy = self.sell = 0.0
        return row


def fill_prehistory(
    book: SymbolBook,
    rng: np.random.Generator,
    start_ms: int,
    days: int,
    trade_rate: float,
    interest: float = INTEREST_RATE,
) -> None:
    """30 days of 5-minute indicator rows and funding rows before the start.

    Collectors backfill these on their first run (Binance keeps ~30 days), so a
    fresh sim must have them. The price path is a walk generated backwards from
    the start price, so history joins the live series without a jump.
    """
    spec = book.spec
    if days <= 0:
        return
    first = (start_ms - days * DAY_MS) // FIVE_MIN_MS * FIVE_MIN_MS + FIVE_MIN_MS
    times = np.arange(first, start_ms + 1, FIVE_MIN_MS, dtype=np.int64)
    times = times[times <= start_ms]
    n = len(times)
    if n == 0:
        return
    sigma5 = spec.daily_vol / math.sqrt(288)
    steps = sigma5 * rng.standard_normal(n)
    logp = math.log(spec.start_price) - np.concatenate([np.cumsum(steps[::-1])[::-1][1:], [0.0]])
    price = np.exp(logp)
    walk = np.cumsum(0.004 * rng.standard_normal(n))
    oi = spec.open_interest_usd / spec.start_price * np.exp(walk - walk[-1])
    mean_vol = trade_rate * 300 * spec.median_notional * 2.05 / price
    imbalance = np.tanh(0.3 * rng.standard_normal(n))
    vols = mean_vol * np.exp(0.4 * rng.standard_normal(n))
    buy = vols * (1 + imbalance) / 2
    sell = vols * (1 - imbalance) / 2
    ratios = []
    for center in (1.6, 1.15, 1.35):
        x = np.empty(n)
        mean = math.log(center)
        v = mean
        for i, z in enumerate(rng.standard_normal(n).tolist()):
            v += 0.05 * (mean - v) + 0.03 * z
            x[i] = math.exp(v)
        ratios.append(x)
    book.hist.extend(
        times,
        oi=oi,
        oi_value=oi * price,
        global_ls=ratios[0],
        top_pos_ls=ratios[1],
        top_acc_ls=ratios[2],
        buy_vol=buy,
        sell_vol=sell,
    )
    step = spec.funding_interval_hours * HOUR_MS
    ft = (start_ms - days * DAY_MS) // step * step + step
    rate = interest
    while ft <= start_ms:
        rate += 0.3 * (interest - rate) + 0.00005 * float(rng.standard_normal())
        i = min(n - 1, max(0, int(np.searchsorted(times, ft))))
        book.funding.append(SimFunding(spec.symbol, ft, float(rate), float(price[i])))
        ft += step


# ---------------------------------------------------------------------------------------------
# The market interface the server and the account engine use


class Market:
    def __init__(
        self, specs: list[SymbolSpec], start_ms: int, retention: Retention | None = None
    ) -> None:
        self.specs = {s.symbol: s for s in specs}
        self.books = {s.symbol: SymbolBook(s) for s in specs}
        self.by_product = {s.coinbase_product: s.symbol for s in specs}
        self.start_ms = start_ms
        self.now_ms = start_ms
        self.retention = retention or Retention()
        self.trade_rates: dict[str, float] = {s.symbol: 0.0 for s in specs}

    @property
    def symbols(self) -> list[str]:
        return list(self.books)

    def advance(self, to_ms: int) -> Release:
        raise NotImplementedError

    def _release_all(self, to_ms: int) -> list[SymbolRelease]:
        out = []
        for book in self.books.values():
            book.forget_before(to_ms, self.retention)
            out.append(book.release_until(to_ms))
        self.now_ms = to_ms
        return out

    def shock(self, symbol: str, bps: float) -> None:
        raise NotImplementedError

    def force_regime(self, symbol: str, regime: str | None) -> None:
        raise NotImplementedError

    def move(self, symbol: str, pct: float) -> None:
        raise ValueError("move_pct needs the synthetic market (a replay plays what was recorded)")

    def volatile(self, symbol: str) -> bool:
        return False

    def coinbase_ticker(self, product: str) -> dict[str, Any] | None:
        symbol = self.by_product.get(product.upper())
        if symbol is None:
            return None
        return self.books[symbol].coinbase_ticker(self.now_ms, self.trade_rates[symbol])


# ---------------------------------------------------------------------------------------------
# The synthetic market


@dataclass(frozen=True, slots=True)
class ModelParams:
    calm_exit_per_s: float = 1 / 1200
    """Calm regimes last 20 minutes of simulated time on average…"""
    volatile_exit_per_s: float = 1 / 180
    """…volatile ones three."""
    volatile_vol_mult: float = 4.0
    volatile_rate_mult: float = 3.0
    flow_theta: float = 0.05
    flow_sigma: float = 0.25
    flow_sigma_volatile: float = 0.5
    side_persistence: float = 0.6
    side_persistence_volatile: float = 0.8
    size_sigma: float = 1.2
    tail_prob: float = 0.01
    tail_prob_volatile: float = 0.03
    tail_alpha: float = 1.3
    tail_scale: float = 10.0
    impact_frac: float = 0.7
    """Signed sqrt impact, per second of typical flow, as a fraction of the diffusion σ."""
    fills_cap: float = 20.0
    premium_mean: float = 0.00005
    premium_theta: float = 0.002
    premium_sigma: float = 0.00002
    premium_sigma_volatile: float = 0.00008
    rate_cap: float = 0.003
    liq_prob: float = 0.003
    liq_prob_volatile: float = 0.15
    liq_median_usd: float = 15_000.0

    def with_liquidations(self, multiplier: float) -> ModelParams:
        """The same model with liquidations ``multiplier`` times as likely (≤ 1 a second)."""
        return replace(
            self,
            liq_prob=min(1.0, self.liq_prob * multiplier),
            liq_prob_volatile=min(1.0, self.liq_prob_volatile * multiplier),
        )


@dataclass(slots=True)
class _SymbolGenerator:
    rng: np.random.Generator
    ind: IndicatorModel
    logmid: float
    sigma_s: float
    rate: float
    regime: int = 0
    forced_regime: int | None = None
    flow: float = 0.0
    last_buy: bool = True
    next_agg_id: int = 1
    next_trade_id: int = 1
    premium: float = 0.00005
    prem_avg: float = 0.00005
    shock: float = 0.0
    gen_until: int = 0


class SyntheticMarket(Market):
    def __init__(
        self,
        specs: list[SymbolSpec],
        start_ms: int,
        seed: int,
        trade_rates: dict[str, float],
        volatility: float = 1.0,
        history_days: int = 30,
        retention: Retention | None = None,
        params: ModelParams | None = None,
    ) -> None:
        if start_ms % BLOCK_MS:
            raise ValueError("start_ms must be a whole second")
        super().__init__(specs, start_ms, retention)
        self.params = params or ModelParams()
        self.seed = seed
        self._gens: dict[str, _SymbolGenerator] = {}
        for spec in specs:
            key = zlib.crc32(spec.symbol.encode())
            rng = np.random.default_rng([seed, key])
            rate = trade_rates.get(spec.symbol, 0.0)
            self.trade_rates[spec.symbol] = rate
            g = _SymbolGenerator(
                rng=rng,
                ind=IndicatorModel(spec, np.random.default_rng([seed, key, 2]), spec.start_price),
                logmid=math.log(spec.start_price),
                sigma_s=spec.daily_vol * volatility / math.sqrt(86_400),
                rate=rate,
                # Ids in the range real contracts have reached, so nobody assumes small ids.
                next_agg_id=1_000_000_000 + (key % 1_000_000) * 1000,
                next_trade_id=3_000_000_000 + (key % 1_000_000) * 1000,
                gen_until=start_ms,
            )
            self._gens[spec.symbol] = g
            book = self.books[spec.symbol]
            fill_prehistory(
                book, np.random.default_rng([seed, key, 1]), start_ms, history_days, rate
            )
            book.funding_released = len(book.funding)
            book.hist.release_until(start_ms)
            index = spec.start_price
            book.marks.append(
                start_ms,
                mark=index * (1 + g.premium),
                index=index,
                settle=index,
                rate=INTEREST_RATE,
                next_funding=next_funding_after(start_ms, spec.funding_interval_hours),
                cb_bps=0.0,
                oi=g.ind.oi,
            )
            book.marks.release_until(start_ms)

    # -- control ---------------------------------------------------------------------------

    def shock(self, symbol: str, bps: float) -> None:
        """Jump the mid by ``bps`` at the next block not yet generated (tests of triggers)."""
        self._gens[symbol].shock += math.log1p(bps / 1e4)

    def move(self, symbol: str, pct: float) -> None:
        """Move the price level by ``pct`` percent now; the process carries on from there."""
        factor = 1.0 + pct / 100.0
        self._gens[symbol].logmid += math.log(factor)
        self.books[symbol].move(factor, self.now_ms)

    def force_regime(self, symbol: str, regime: str | None) -> None:
        self._gens[symbol].forced_regime = (
            None if regime is None else {"calm": 0, "volatile": 1}[regime]
        )

    def volatile(self, symbol: str) -> bool:
        return self._gens[symbol].regime == 1

    # -- generation ------------------------------------------------------------------------

    def advance(self, to_ms: int) -> Release:
        to_ms = max(to_ms, self.now_ms)
        for symbol, g in self._gens.items():
            book = self.books[symbol]
            while g.gen_until <= to_ms:
                self._block(book, g, g.gen_until)
                g.gen_until += BLOCK_MS
        return Release(to_ms, self._release_all(to_ms))

    def _block(self, book: SymbolBook, g: _SymbolGenerator, t0: int) -> None:
        p = self.params
        spec = book.spec
        rng = g.rng
        u = float(rng.random())
        if g.forced_regime is not None:
            g.regime = g.forced_regime
        elif g.regime == 0 and u < p.calm_exit_per_s:
            g.regime = 1
        elif g.regime == 1 and u < p.volatile_exit_per_s:
            g.regime = 0
        volatile = g.regime == 1
        sigma = g.sigma_s * (p.volatile_vol_mult if volatile else 1.0)
        rate = g.rate * (p.volatile_rate_mult if volatile else 1.0)
        g.flow += -p.flow_theta * g.flow + (
            p.flow_sigma_volatile if volatile else p.flow_sigma
        ) * float(rng.standard_normal())
        p_buy = 1.0 / (1.0 + math.exp(-g.flow))
        if g.shock:
            g.logmid += g.shock
            g.shock = 0.0
        start_logmid = g.logmid
        n = int(rng.poisson(rate)) if rate > 0 else 0
        remaining = 1.0
        if n:
            # In place where numpy would copy: a block costs more in calls than in arithmetic.
            offs = rng.integers(0, BLOCK_MS, n)  # int64
            offs.sort()
            rho = p.side_persistence_volatile if volatile else p.side_persistence
            resample = rng.random(n) >= rho
            draws = rng.random(n) < p_buy
            idx = np.where(resample, np.arange(n), -1)
            np.maximum.accumulate(idx, out=idx)
            buy = np.where(idx >= 0, draws[np.maximum(idx, 0)], g.last_buy)
            notional = spec.median_notional * np.exp(p.size_sigma * rng.standard_normal(n))
            tail = rng.random(n) < (p.tail_prob_volatile if volatile else p.tail_prob)
            k = int(tail.sum())
            if k:
                notional[tail] *= p.tail_scale * (1.0 + rng.pareto(p.tail_alpha, k))
            gaps = offs.copy()
            gaps[1:] -= offs[:-1]
            dt = gaps / 1000.0
            sign = np.where(buy, 1.0, -1.0)
            steps = sigma * np.sqrt(dt) * rng.standard_normal(n)
            steps += (
                (p.impact_frac * g.sigma_s / max(g.rate, 1.0))
                * sign
                * np.sqrt(notional / spec.median_notional)
            )
            path = g.logmid + np.cumsum(steps)
            mid = np.exp(path)
            g.logmid = float(path[-1])
            remaining = (BLOCK_MS - int(offs[-1])) / 1000.0
            qty = np.rint(notional / mid * spec.qty_scale / spec.step).astype(np.int64) * spec.step
            np.maximum(qty, max(spec.step, spec.min_qty), out=qty)
            np.minimum(qty, spec.market_max_qty, out=qty)
            bid = np.floor(mid * spec.price_scale / spec.tick).astype(np.int64) * spec.tick
            np.maximum(bid, spec.tick, out=bid)
            price = bid + np.where(buy, spec.tick, 0).astype(np.int64)
            nfills = 1 + rng.poisson(np.minimum(p.fills_cap, 0.4 * notional / spec.median_notional))
            last = g.next_trade_id - 1 + np.cumsum(nfills)
            first = last - nfills + 1
            a = np.arange(g.next_agg_id, g.next_agg_id + n, dtype=np.int64)
            g.next_agg_id += n
            g.next_trade_id = int(last[-1]) + 1
            g.last_buy = bool(buy[-1])
            book.tape.append(a, t0 + offs, price, qty, first, last, ~buy)
            bq = float(qty[buy].sum()) / spec.qty_scale
            g.ind.on_trades(bq, float(qty.sum()) / spec.qty_scale - bq)
        g.logmid += sigma * math.sqrt(remaining) * float(rng.standard_normal())
        # A liquidation snapshot (at most one a second, as Binance pushes them).
        liq_qty = 0.0
        if float(rng.random()) < (p.liq_prob_volatile if volatile else p.liq_prob):
            liq_qty = self._liquidation(book, g, t0, g.logmid - start_logmid)
        # Mark, index, funding, indicators at the block's end.
        t1 = t0 + BLOCK_MS
        z = rng.standard_normal(2)
        index = math.exp(g.logmid) * (1.0 + 0.00002 * float(z[0]))
        g.premium += (
            p.premium_theta * (p.premium_mean - g.premium)
            + (p.premium_sigma_volatile if volatile else p.premium_sigma) * float(z[1])
            + 0.000002 * g.flow
        )
        interval_ms = spec.funding_interval_hours * HOUR_MS
        g.prem_avg += (g.premium - g.prem_avg) * (BLOCK_MS / interval_ms) * 4
        rate_est = g.prem_avg + min(max(INTEREST_RATE - g.prem_avg, -0.0005), 0.0005)
        rate_est = min(max(rate_est, -p.rate_cap), p.rate_cap)
        mark = index * (1.0 + g.premium)
        if t1 % interval_ms == 0:
            book.funding.append(SimFunding(spec.symbol, t1, rate_est, mark))
        g.ind.on_second(volatile, liq_qty)
        book.marks.append(
            t1,
            mark=mark,
            index=index,
            settle=index * (1.0 + g.prem_avg),
            rate=rate_est,
            next_funding=next_funding_after(t1, spec.funding_interval_hours),
            cb_bps=g.ind.cb_bps,
            oi=g.ind.oi,
        )
        if t1 % FIVE_MIN_MS == 0:
            book.hist.append(t1, **g.ind.five_minute_row(mark, volatile))

    def _liquidation(self, book: SymbolBook, g: _SymbolGenerator, t0: int, ret: float) -> float:
        spec = book.spec
        rng = g.rng
        longs_hit = float(rng.random()) < (0.8 if ret < 0 else 0.2)
        side = "SELL" if longs_hit else "BUY"
        notional = self.params.liq_median_usd * math.exp(float(rng.standard_normal()))
        off = int(rng.integers(0, BLOCK_MS))
        slip = 0.002 + 0.008 * float(rng.random())
        mid_units = math.exp(g.logmid) * spec.price_scale
        tick = spec.tick
        if longs_hit:
            avg = int(mid_units) // tick * tick
            price = int(mid_units * (1 - slip)) // tick * tick
        else:
            avg = (int(mid_units) // tick + 1) * tick
            price = (int(mid_units * (1 + slip)) // tick + 1) * tick
        qty = max(
            spec.step, round(notional / math.exp(g.logmid) * spec.qty_scale / spec.step) * spec.step
        )
        # Pushed as the second's snapshot when the second ends: up to a second after it.
        book.liquidations.append(
            LiquidationEvent(
                spec.symbol, t0 + off, side, max(price, tick), max(avg, tick), qty, t0 + BLOCK_MS
            )
        )
        return qty / spec.qty_scale


# ---------------------------------------------------------------------------------------------
# Payloads of the market streams


def mark_payload(p: MarkPoint) -> dict[str, Any]:
    return {
        "e": "markPriceUpdate",
        "E": p.t,
        "s": p.symbol,
        "p": fmt_float(p.mark),
        "P": fmt_float(p.settle),
        "i": fmt_float(p.index),
        "r": fmt_float(p.rate),
        "T": p.next_funding,
    }


def liquidation_payload(spec: SymbolSpec, liq: LiquidationEvent) -> dict[str, Any]:
    q = fmt_units(liq.qty, spec.qty_precision)
    return {
        "e": "forceOrder",
        "E": liq.pushed,
        "o": {
            "s": liq.symbol,
            "S": liq.side,
            "o": "LIMIT",
            "f": "IOC",
            "q": q,
            "p": fmt_units(liq.price, spec.price_precision),
            "ap": fmt_units(liq.avg_price, spec.price_precision),
            "X": "FILLED",
            "l": q,
            "z": q,
            "T": liq.t,
        },
    }


_TEMPLATES: dict[tuple[str, int, int], bytes] = {}


def _template(spec: SymbolSpec) -> bytes:
    key = (spec.symbol, spec.price_precision, spec.qty_precision)
    tmpl = _TEMPLATES.get(key)
    if tmpl is None:
        price = f"%d.%0{spec.price_precision}d" if spec.price_precision else "%d"
        qty = f"%d.%0{spec.qty_precision}d" if spec.qty_precision else "%d"
        tmpl = (
            '{"e":"aggTrade","E":%d,"a":%d,"s":"'
            + spec.symbol
            + '","p":"'
            + price
            + '","q":"'
            + qty
            + '","f":%d,"l":%d,"T":%d,"m":%s}'
        ).encode()
        _TEMPLATES[key] = tmpl
    return tmpl


_BOOL = (b"false", b"true")


def agg_trade_payloads(
    spec: SymbolSpec, cols: TradeHistoryColumns
) -> tuple[list[bytes], list[int]]:
    """aggTrade stream payloads (JSON bytes) for a tape slice, and their ids.

    The hot path of the market streams: one ``bytes % tuple`` per trade over
    columns turned into Python lists once. ``E`` trails ``T`` by 1–5 ms.
    """
    tmpl = _template(spec)
    a = cols.a.tolist()
    t_arr = cols.t
    e = (t_arr + 1 + cols.a % 5).tolist()
    t = t_arr.tolist()
    f = cols.first.tolist()
    last = cols.last.tolist()
    m = [_BOOL[x] for x in cols.buyer_maker.tolist()]
    columns: list[list[Any]] = [e, a]
    for values, precision in ((cols.price, spec.price_precision), (cols.qty, spec.qty_precision)):
        if precision:
            whole, frac = np.divmod(values, 10**precision)
            columns += [whole.tolist(), frac.tolist()]
        else:
            columns.append(values.tolist())
    columns += [f, last, t, m]
    return [tmpl % row for row in zip(*columns, strict=True)], a
