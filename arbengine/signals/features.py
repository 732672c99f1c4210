"""Per-symbol features at a tick, exactly as SIGNALS.md defines them.

One :class:`SymbolFeatures` per symbol serves every strategy: the data it
keeps does not depend on any strategy (24 h of trades, 26 h of candles,
indicator values), and each strategy's window lengths, staleness and
percentile minimum are a :class:`FeatureSpec` passed at evaluation, so a
reloaded strategy with other windows is served from the next tick on.

Pure and synchronous: no clock, no I/O. Time is the tick ``t`` (epoch ms,
whole seconds) and the event times of the inputs.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from math import isfinite as _isfinite
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from arbengine.domain.market import Indicator, Liquidation, MarkPrice, RateSnapshot, TradeBatch
from arbengine.signals.candles import HORIZON_MS, AtrState, Candles
from arbengine.signals.large import LargeTracker
from arbengine.signals.series import (
    MARKET_KINDS,
    AsOfSeries,
    InputSeries,
    LiquidationSeries,
    asof_each,
)
from arbengine.signals.trade_window import AddResult, TickOrderError, TradeWindow

SECOND_MS = 1_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MAX_WINDOW_MS = DAY_MS
MAX_STALENESS_MS = HORIZON_MS
DEFAULT_FUNDING_INTERVAL_HOURS = 8.0
_HOUSEKEEPING_MS = 5 * 60_000

FEATURE_NAMES: tuple[str, ...] = (
    "price",
    "cvd_fast",
    "cvd_mid",
    "cvd_day",
    "flow_fast",
    "flow_mid",
    "vwap_fast",
    "vwap_mid",
    "vwap_day",
    "vwap_dev_fast",
    "vwap_dev_mid",
    "atr",
    "atr_pct",
    "atr_percentile",
    "large_threshold",
    "large_imbalance_fast",
    "funding_rate",
    "funding_annualised",
    "oi_change_1h",
    "ls_global",
    "ls_top",
    "taker_ratio",
    "coinbase_premium_bps",
    "liq_imbalance_fast",
    "trades_fast",
)
_FEATURE_SET = frozenset(FEATURE_NAMES)
I64 = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """The strategy keys that change how features are computed."""

    fast_ms: int = 30 * MINUTE_MS
    mid_ms: int = 4 * HOUR_MS
    day_ms: int = DAY_MS
    max_staleness_ms: int = 5 * MINUTE_MS
    atr_percentile_min_values: int = 288
    seconds: tuple[int, int, int] = field(init=False, repr=False, compare=False)
    """(fast, mid, day) in seconds, as a tick reads them (derived once, not per tick)."""

    def __post_init__(self) -> None:
        for name in ("fast_ms", "mid_ms", "day_ms"):
            value = getattr(self, name)
            if value <= 0 or value % SECOND_MS or value > MAX_WINDOW_MS:
                raise ValueError(f"{name} must be whole seconds in (0, 24h], got {value}")
        if not self.fast_ms <= self.day_ms:
            raise ValueError("the fast window must not be longer than the day window")
        s = self.max_staleness_ms
        if s <= 0 or s % SECOND_MS or s > MAX_STALENESS_MS:
            raise ValueError(f"max_staleness_ms must be whole seconds in (0, 26h], got {s}")
        if not 12 <= self.atr_percentile_min_values <= 288:
            raise ValueError("atr_percentile_min_values must be within 12..288")
        lengths = (self.fast_ms // SECOND_MS, self.mid_ms // SECOND_MS, self.day_ms // SECOND_MS)
        object.__setattr__(self, "seconds", lengths)


DEFAULT_SPEC = FeatureSpec()


class Features(Mapping[str, float]):
    """Feature name → value at one tick for one symbol; an absent feature is missing."""

    __slots__ = ("_values", "mapping", "symbol", "t_ms")

    def __init__(self, symbol: str, t_ms: int, values: Mapping[str, float]) -> None:
        self.symbol = symbol
        self.t_ms = t_ms
        self._values = {k: float(values[k]) for k in FEATURE_NAMES if k in values}
        self.mapping: Mapping[str, float] = self._values
        """The values without a copy (read-only by contract), for hot loops."""
        unknown = set(values) - _FEATURE_SET
        if unknown:
            raise KeyError(f"unknown features: {sorted(unknown)}")

    @classmethod
    def _trusted(cls, symbol: str, t_ms: int, values: dict[str, float]) -> Features:
        """Adopt ``values`` (known names, canonical order) without copying."""
        out = cls.__new__(cls)
        out.symbol, out.t_ms, out._values, out.mapping = symbol, t_ms, values, values
        return out

    def __getitem__(self, key: str) -> float:
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def get(self, key: str, default: float | None = None) -> float | None:  # type: ignore[override]
        return self._values.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Features({self.symbol!r}, {self.t_ms}, {self._values!r})"

    def as_dict(self) -> dict[str, float]:
        return dict(self._values)


_SERIES = tuple(InputSeries)
"""The indicator series in a fixed order: per-tick as-of values are a tuple in this order."""
_FUNDING, _INTERVAL, _OI, _INDEX, _COINBASE, _LS_GLOBAL, _LS_TOP, _TAKER = (
    _SERIES.index(k)
    for k in (
        InputSeries.FUNDING_RATE,
        InputSeries.FUNDING_INTERVAL_HOURS,
        InputSeries.OPEN_INTEREST,
        InputSeries.INDEX_PRICE,
        InputSeries.COINBASE_PRICE,
        InputSeries.LS_GLOBAL,
        InputSeries.LS_TOP,
        InputSeries.TAKER_RATIO,
    )
)

Window = tuple[int, float, float, float]
"""Trade count, Σq, Σ signed q, Σ p·q over one window."""


IndicatorValue = tuple[str, int, float]
"""(feature, known, value): the feature is present under staleness s at t when
``known >= max(t − s, t − 26 h)``."""


class _TickBase(NamedTuple):
    """What every spec reads the same way at one tick, computed once per tick."""

    last: tuple[int, float] | None
    """(time, price) of the last trade before the tick."""
    atr: AtrState
    indicators: tuple[IndicatorValue, ...]
    """The indicator features that can be present at this tick, in feature order."""
    all_indicators: dict[str, float]
    """Those features by name: every spec's when all are fresh for it (the usual case)."""
    fresh_from: int
    """All of them are fresh under a staleness s with ``max(t − s, t − 26 h)`` at most this."""


def _indicator_values(
    t_ms: int, asof: tuple[tuple[int, float] | None, ...], oi_then: tuple[int, float] | None
) -> tuple[IndicatorValue, ...]:
    """Each indicator feature computable at t, with the time from which it is fresh.

    A series value counts under staleness s when known at or after ``t − s`` (never
    before t's history horizon: the staleness is at most the horizon), the OI an hour
    ago when known at or after ``t − 1h − s`` and within the horizon, the funding
    interval when known within the horizon. A feature reading two values is fresh when
    both are: from the later of the two times they must be known by.
    """
    horizon = t_ms - HORIZON_MS
    out: list[IndicatorValue] = []
    got = asof[_FUNDING]
    if got is not None:
        known, funding = got
        out.append(("funding_rate", known, funding))
        interval = asof[_INTERVAL]
        if interval is not None and interval[0] >= horizon:
            hours = interval[1]
        else:
            hours = DEFAULT_FUNDING_INTERVAL_HOURS
        if hours > 0:
            out.append(("funding_annualised", known, funding * (24.0 / hours) * 365.0))
    now = asof[_OI]
    if (
        now is not None
        and oi_then is not None
        and now[0] >= horizon
        and oi_then[0] >= horizon
        and now[1] > 0
        and oi_then[1] > 0
    ):
        out.append(("oi_change_1h", min(now[0], oi_then[0] + HOUR_MS), now[1] / oi_then[1] - 1.0))
    for name, k in (("ls_global", _LS_GLOBAL), ("ls_top", _LS_TOP), ("taker_ratio", _TAKER)):
        got = asof[k]
        if got is not None and got[1] > 0:
            out.append((name, got[0], math.log(got[1])))
    got, idx = asof[_COINBASE], asof[_INDEX]
    if got is not None and idx is not None and idx[1] > 0:
        coinbase, index = got[1], idx[1]
        premium = (coinbase - index) / index * 1e4
        out.append(("coinbase_premium_bps", min(got[0], idx[0]), premium))
    return tuple(out)


class _TickCache:
    """What the current tick has computed so far; any new input or a new tick drops it."""

    __slots__ = ("base", "features", "indicators", "large", "windows")

    def __init__(self) -> None:
        self.features: dict[int, tuple[FeatureSpec, Features]] = {}
        """Features by ``id(spec)`` (the spec is kept to check identity)."""
        self.windows: dict[int, Window] = {}
        """Window sums by length (s)."""
        self.base: _TickBase | None = None
        self.large: dict[int, float | None] = {}
        """Large-order threshold by day window (ms)."""
        self.indicators: dict[int, dict[str, float]] = {}
        """Indicator features by staleness (ms)."""


class SymbolFeatures:
    """All the state the features of one symbol need, fed by events, read at ticks.

    Ticks must be evaluated in non-decreasing order. Trades may run ahead of
    the evaluated tick (live, the trade that makes a tick due is itself
    later than the tick) by up to about two days.
    """

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._tape = TradeWindow()
        self._candles = Candles()
        self._trackers: dict[int, LargeTracker] = {}
        self._series: dict[InputSeries, AsOfSeries] = {k: AsOfSeries() for k in _SERIES}
        self._series_list = tuple(self._series[k] for k in _SERIES)
        self._liq = LiquidationSeries()
        self._last_eval_ms: int | None = None
        self._housekeep_at = zlib.crc32(symbol.encode()) % _HOUSEKEEPING_MS
        self._late_trades = 0
        self._lengths: tuple[Sequence[FeatureSpec], tuple[int, ...]] = ((), ())
        """The last specs evaluated together and their window lengths (s), in first-use order."""
        self._cache: _TickCache | None = None
        """Per-tick memos, dropped by ``_invalidate`` (a new tick or any new input)."""

    # ---- inputs --------------------------------------------------------------------------

    @property
    def late_trades(self) -> int:
        """Trades accepted after their tick was evaluated, since start."""
        return self._late_trades

    def _invalidate(self) -> None:
        self._cache = None

    def add_trades(self, batch: TradeBatch) -> AddResult:
        """Add trades in any order and any batching; repeated agg_ids count once."""
        n = len(batch)
        if n == 0:
            return AddResult(0, 0, 0, 0)
        if not (np.isfinite(batch.price).all() and np.isfinite(batch.qty).all()):
            raise ValueError("trade price and quantity must be finite")
        if (batch.price <= 0).any() or (batch.qty < 0).any():
            raise ValueError("trade price must be > 0 and quantity >= 0")
        picked = self._pick_new(batch)
        if isinstance(picked, AddResult):
            return picked
        idx, duplicates, too_old = picked
        if idx is None:  # every trade new, in (T, agg_id) order: the columns as they are
            t, ids, p = batch.ts, batch.agg_id, batch.price
            q, m = batch.qty, batch.is_buyer_maker
        else:
            t, ids, p = batch.ts[idx], batch.agg_id[idx], batch.price[idx]
            q, m = batch.qty[idx], batch.is_buyer_maker[idx]
        pq = p * q
        sq = np.where(m, -q, q)
        x = np.where(m, -pq, pq)
        self._candles.add(t, ids, p)
        late = 0
        last_eval = self._last_eval_ms
        if last_eval is not None:
            late = int(np.count_nonzero(t < last_eval))
        floor = self._tape.floor_sec
        start = 0
        if floor is not None:
            start = int(np.searchsorted(t, floor * SECOND_MS, side="left"))
            if start:
                self._tape.note_old_trade(
                    int(t[start - 1]), int(ids[start - 1]), float(p[start - 1])
                )
        if start < len(t):
            s = slice(start, None)
            self._tape.store(t[s], ids[s], p[s], q[s], sq[s], x[s])
            if late and last_eval is not None and self._trackers:
                lt = t[s] < last_eval
                secs, xs = t[s][lt] // SECOND_MS, x[s][lt]
                for tracker in self._trackers.values():
                    tracker.on_insert(secs, xs)
        self._late_trades += late
        self._invalidate()
        return AddResult(len(t), duplicates, late, too_old)

    def _pick_new(self, batch: TradeBatch) -> tuple[I64 | None, int, int] | AddResult:
        """The trades of ``batch`` to store, in (T, agg_id) order, as indices (None: all of
        them, already in order), with the counts of repeated and too old trades.

        A batch from the tape or a replay is already in order with ids above every id
        seen, and is taken as it is: sorting and gathering 3 M trades would cost more
        than everything else their ingestion does.
        """
        n = len(batch)
        ids, ts = batch.agg_id, batch.ts
        horizon = None if self._last_eval_ms is None else self._last_eval_ms - HORIZON_MS
        if n == 1 or bool((ids[1:] > ids[:-1]).all() and (ts[1:] >= ts[:-1]).all()):
            seen = self._tape.ids
            unseen = None if seen.all_above(int(ids[0])) else seen.unseen(ids)
            fresh = None if horizon is None or int(ts[0]) >= horizon else ts >= horizon
            if unseen is None and fresh is None:
                seen.add(ids, ts)
                return None, 0, 0
            n_unseen = n if unseen is None else int(np.count_nonzero(unseen))
            if unseen is None:
                keep = fresh
            elif fresh is None:
                keep = unseen
            else:
                keep = unseen & fresh
            assert keep is not None  # both None returned above
            idx = np.flatnonzero(keep)
            if not len(idx):
                return AddResult(0, n - n_unseen, 0, n_unseen)
            seen.add(ids[idx], ts[idx])
            return idx, n - n_unseen, n_unseen - len(idx)
        order = np.argsort(ids, kind="stable")
        sid = ids[order]
        first = np.ones(n, np.bool_)
        first[1:] = sid[1:] != sid[:-1]
        keep = first & self._tape.ids.unseen(sid)
        duplicates = n - int(np.count_nonzero(keep))
        idx = order[keep]
        t_all = ts[idx]
        too_old = 0
        if horizon is not None:
            fresh = t_all >= horizon
            too_old = len(idx) - int(np.count_nonzero(fresh))
            idx, t_all = idx[fresh], t_all[fresh]
        if len(idx) == 0:
            return AddResult(0, duplicates, 0, too_old)
        self._tape.ids.add(ids[idx], t_all)  # idx is ascending by agg_id
        return idx[np.lexsort((ids[idx], t_all))], duplicates, too_old

    def add_value(self, series: InputSeries, known_ms: int, value: float) -> None:
        """One indicator value and the time it became known; a NaN or ∞ is no value."""
        if _isfinite(value):
            self._series[series].add(known_ms, value)
            self._invalidate()

    def add_indicator(self, indicator: Indicator) -> bool:
        """A collector indicator; False when it is of a kind no feature reads."""
        series = MARKET_KINDS.get(indicator.kind)
        if series is None or indicator.value is None:
            return False
        self.add_value(series, indicator.known_at, indicator.value)
        return True

    def add_mark_price(self, mark: MarkPrice | RateSnapshot) -> None:
        """A markPrice update or premiumIndex reading: funding rate and index price.

        A premiumIndex reading counts from when it became visible (``visible_at``: its
        own time, or its arrival when later), so live and backtest see the same values.
        """
        known = mark.visible_at if isinstance(mark, RateSnapshot) else mark.ts
        # add_value twice, inlined: a backtest feeds one reading per 2 s per symbol.
        rate, index = mark.funding_rate, mark.index_price
        if _isfinite(rate):
            self._series_list[_FUNDING].add(known, rate)
        if _isfinite(index):
            self._series_list[_INDEX].add(known, index)
        self._invalidate()

    def add_rate_columns(
        self, known_ms: Sequence[int], funding_rate: Sequence[float], index_price: Sequence[float]
    ) -> None:
        """Many premiumIndex readings at once (a backtest or warm start reads them by the
        hundred thousand): the same values ``add_mark_price`` would add, one by one."""
        funding = self._series_list[_FUNDING]
        index = self._series_list[_INDEX]
        for known, rate, idx in zip(known_ms, funding_rate, index_price, strict=True):
            if _isfinite(rate):
                funding.add(known, rate)
            if _isfinite(idx):
                index.add(known, idx)
        self._invalidate()

    def add_liquidation(self, liq: Liquidation) -> None:
        """A forceOrder: BUY liquidates a short, SELL a long; its time is the order time."""
        notional = liq.avg_price * liq.filled_qty
        if math.isfinite(notional):
            self._liq.add(liq.ts, notional if liq.side == "BUY" else -notional)
            self._invalidate()

    # ---- evaluation ----------------------------------------------------------------------

    def _advance(self, t_ms: int) -> None:
        if t_ms % SECOND_MS:
            raise ValueError(f"ticks are whole seconds, got t={t_ms}")
        last = self._last_eval_ms
        if last is not None and t_ms < last:
            raise TickOrderError(f"tick {t_ms} is before the last evaluated tick {last}")
        if last == t_ms:
            return
        self._last_eval_ms = t_ms
        if t_ms >= self._housekeep_at:
            # Forgetting is only about memory (every read is bounded by the tick), so it
            # runs once per period, at a per-symbol phase: not all symbols in one tick.
            phase = self._housekeep_at % _HOUSEKEEPING_MS
            self._housekeep_at = t_ms - (t_ms - phase) % _HOUSEKEEPING_MS + _HOUSEKEEPING_MS
            self._tape.set_floor((t_ms - MAX_WINDOW_MS) // SECOND_MS)
            self._tape.ids.prune(t_ms - HORIZON_MS)
            self._liq.prune(t_ms - MAX_WINDOW_MS)
            for series in self._series_list:
                series.prune(t_ms - HOUR_MS)
        self._invalidate()

    def forget_windows(self, day_windows_ms: Iterable[int]) -> None:
        """Drop large-order trackers for day windows no strategy uses any more."""
        keep = set(day_windows_ms)
        for day in list(self._trackers):
            if day not in keep:
                del self._trackers[day]

    def evaluate(self, t_ms: int, spec: FeatureSpec = DEFAULT_SPEC) -> Features:
        """Features at tick ``t_ms``: trades with T < t, indicator values known before t."""
        return self.evaluate_each(t_ms, (spec,))[0]

    def evaluate_each(self, t_ms: int, specs: Sequence[FeatureSpec]) -> list[Features]:
        """:meth:`evaluate` under each of ``specs``, what they share computed once.

        Every value is the one :meth:`evaluate` gives for that spec alone: the specs
        share sums and searches, never each other's results.
        """
        if t_ms != self._last_eval_ms:
            self._advance(t_ms)
        cache = self._cache
        if cache is None:
            cache = self._cache = _TickCache()
        done = cache.features
        out = []
        for spec in specs:
            hit = done.get(id(spec))
            if hit is None or hit[0] is not spec:
                hit = done[id(spec)] = (spec, self._compute(t_ms, spec, specs, cache))
            out.append(hit[1])
        return out

    def _compute(
        self, t_ms: int, spec: FeatureSpec, specs: Sequence[FeatureSpec], cache: _TickCache
    ) -> Features:
        t_sec = t_ms // SECOND_MS
        fast_sec, mid_sec, day_sec = spec.seconds
        wins = cache.windows
        # Windows first: their one search for rows also answers the last price's.
        if fast_sec not in wins or mid_sec not in wins or day_sec not in wins:
            self._sum_windows(t_sec, specs, wins)
        base = cache.base
        if base is None:
            base = cache.base = self._tick_base(t_ms)
        last = base.last
        price = last[1] if last is not None and last[0] >= t_ms - spec.max_staleness_ms else None
        n_fast, vol_f, cvd_f, pq_f = wins[fast_sec]
        _, vol_m, cvd_m, pq_m = wins[mid_sec]
        _, vol_d, cvd_d, pq_d = wins[day_sec]
        atr_state = base.atr
        atr = atr_state.atr
        n_atr = atr_state.count
        day_ms = spec.day_ms
        large = cache.large
        if day_ms in large:
            threshold = large[day_ms]
        else:
            threshold = large[day_ms] = self._large_threshold(t_sec, day_ms)
        stale = spec.max_staleness_ms
        indicators = cache.indicators.get(stale)
        if indicators is None:
            indicators = cache.indicators[stale] = self._indicator_features(t_ms, stale, base)
        liq = self._liq.imbalance(t_ms - spec.fast_ms, t_ms)

        if (
            price is not None
            and vol_f > 0
            and vol_m > 0
            and vol_d > 0
            and pq_f > 0
            and pq_m > 0
            and atr is not None
            and n_atr >= spec.atr_percentile_min_values
            and threshold is not None
        ):
            # Every feature present (the usual tick): one dict display, in feature order,
            # of the very values the general path below computes.
            vwap_f = pq_f / vol_f
            vwap_m = pq_m / vol_m
            v = {
                "price": price,
                "cvd_fast": cvd_f,
                "cvd_mid": cvd_m,
                "cvd_day": cvd_d,
                "flow_fast": cvd_f / vol_f,
                "flow_mid": cvd_m / vol_m,
                "vwap_fast": vwap_f,
                "vwap_mid": vwap_m,
                "vwap_day": pq_d / vol_d,
                "vwap_dev_fast": (price - vwap_f) / vwap_f,
                "vwap_dev_mid": (price - vwap_m) / vwap_m,
                "atr": atr,
                "atr_pct": atr / price,
                "atr_percentile": 100.0 * atr_state.at_or_below / n_atr,
                "large_threshold": threshold,
                "large_imbalance_fast": self._trackers[day_ms].imbalance(fast_sec, threshold),
                **indicators,
                "liq_imbalance_fast": liq,
                "trades_fast": float(n_fast),
            }
            return Features._trusted(self.symbol, t_ms, v)

        v = {}
        if price is not None:
            v["price"] = price
        v["cvd_fast"] = cvd_f
        v["cvd_mid"] = cvd_m
        v["cvd_day"] = cvd_d
        v["flow_fast"] = cvd_f / vol_f if vol_f > 0 else 0.0
        v["flow_mid"] = cvd_m / vol_m if vol_m > 0 else 0.0
        vwap_f_or = pq_f / vol_f if vol_f > 0 else None
        vwap_m_or = pq_m / vol_m if vol_m > 0 else None
        if vwap_f_or is not None:
            v["vwap_fast"] = vwap_f_or
        if vwap_m_or is not None:
            v["vwap_mid"] = vwap_m_or
        if vol_d > 0:
            v["vwap_day"] = pq_d / vol_d
        if price is not None:
            if vwap_f_or is not None and vwap_f_or > 0:
                v["vwap_dev_fast"] = (price - vwap_f_or) / vwap_f_or
            if vwap_m_or is not None and vwap_m_or > 0:
                v["vwap_dev_mid"] = (price - vwap_m_or) / vwap_m_or
        if atr is not None:
            v["atr"] = atr
            if price is not None:
                v["atr_pct"] = atr / price
            if n_atr >= spec.atr_percentile_min_values:  # AtrState.percentile, inlined
                v["atr_percentile"] = 100.0 * atr_state.at_or_below / n_atr
        if threshold is not None:
            v["large_threshold"] = threshold
            v["large_imbalance_fast"] = self._trackers[day_ms].imbalance(fast_sec, threshold)
        v.update(indicators)
        v["liq_imbalance_fast"] = liq
        v["trades_fast"] = float(n_fast)
        return Features._trusted(self.symbol, t_ms, v)

    def _tick_base(self, t_ms: int) -> _TickBase:
        """What every spec reads the same way at this tick, computed once."""
        series = self._series_list
        indicators = _indicator_values(
            t_ms, asof_each(series, t_ms), series[_OI].asof(t_ms - HOUR_MS)
        )
        return _TickBase(
            self._tape.last_time_price(t_ms // SECOND_MS),
            self._candles.state(t_ms),
            indicators,
            {name: value for name, _, value in indicators},
            min([known for _, known, _ in indicators], default=t_ms),
        )

    def _sum_windows(
        self, t_sec: int, specs: Sequence[FeatureSpec], memo: dict[int, Window]
    ) -> None:
        """Sum every window of ``specs`` not summed yet at this tick, in one pass.

        Each window is summed on its own whatever else is summed with it, so summing one
        that is read by another spec only changes the time spent.
        """
        group = self._lengths
        if group[0] is not specs:  # the engine passes the same specs at every tick
            group = self._lengths = (
                specs,
                tuple(dict.fromkeys([w for s in specs for w in s.seconds])),
            )
        lengths = group[1]
        if memo:
            lengths = tuple(w for w in lengths if w not in memo)
        memo.update(zip(lengths, self._tape.windows(t_sec, lengths)))  # noqa: B905 (equal lengths)

    def _large_threshold(self, t_sec: int, day_ms: int) -> float | None:
        tracker = self._trackers.get(day_ms)
        if tracker is None:
            tracker = self._trackers[day_ms] = LargeTracker(day_ms)
        tracker.advance(self._tape, t_sec)
        return tracker.threshold()

    @staticmethod
    def _indicator_features(t_ms: int, stale: int, base: _TickBase) -> dict[str, float]:
        """The indicator features present under staleness ``stale`` (ms), in feature order."""
        oldest = max(t_ms - stale, t_ms - HORIZON_MS)
        if base.fresh_from >= oldest:
            return base.all_indicators
        return {name: value for name, known, value in base.indicators if known >= oldest}

    # ---- introspection -------------------------------------------------------------------

    def large_tail(self, day_ms: int) -> tuple[float, int] | None:
        """(floor, size) of the large-order tail for a day window, for diagnostics."""
        tracker = self._trackers.get(day_ms)
        return None if tracker is None else (tracker.floor, tracker.tail_size)

    @property
    def trade_count(self) -> int:
        """Trades retained (the last 24 h, plus any ahead of the last tick)."""
        return len(self._tape)

    @property
    def nbytes(self) -> int:
        """Bytes held by the per-symbol structures (numpy buffers and the large-order tails)."""
        return (
            self._tape.nbytes
            + self._candles.nbytes
            + sum(t.nbytes for t in self._trackers.values())
        )
