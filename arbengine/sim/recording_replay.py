"""Replay: serve a recorded file of combined-stream messages instead of the synthetic market.

The file holds one ``{"stream": "...", "data": {...}}`` object per line (what a
combined-stream connection receives; ``.gz`` is read transparently). Each line
is published on its recorded stream at its event time ``E`` (scaled by the
clock like the synthetic market), re-serialised but otherwise as recorded.
aggTrade lines also go to the tape, so REST ``aggTrades`` agrees with what was
streamed; markPrice lines feed premiumIndex and the funding history (a
settlement is detected when ``T``, the next funding time, moves on); forceOrder
lines feed liquidations. Open interest and the long/short series, which a
stream recording cannot contain, come from the seeded indicator model.

A subscriber to a stream the recording does not contain receives nothing, as
on Binance for a stream with no activity. When the file ends the market stays
frozen at its last state.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from arbengine.sim.market_model import (
    BLOCK_MS,
    FIVE_MIN_MS,
    INTEREST_RATE,
    IndicatorModel,
    LiquidationEvent,
    Market,
    Release,
    SimFunding,
    fill_prehistory,
    next_funding_after,
)
from arbengine.sim.retention import Retention
from arbengine.sim.symbols import (
    SymbolSpec,
    decimals_of,
    spec_for,
    spec_from_precisions,
    to_units,
)


class ReplayError(ValueError):
    """The replay file cannot be used (missing, empty, no recognisable messages)."""


@dataclass(slots=True)
class _Line:
    t: int
    stream: str
    data: Any


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _event_time(data: Any) -> int | None:
    if isinstance(data, list):
        data = data[0] if data else None
    if isinstance(data, dict):
        for key in ("E", "T"):
            value = data.get(key)
            if isinstance(value, int):
                return value
    return None


def _lines(path: Path) -> Iterator[_Line]:
    last_t = 0
    with _open(path) as fh:
        for raw in fh:
            raw = raw.strip()
            if not raw:
                continue
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(msg, dict) or "stream" not in msg or "data" not in msg:
                continue
            t = _event_time(msg["data"])
            last_t = t if t is not None else last_t
            yield _Line(last_t, str(msg["stream"]), msg["data"])


@dataclass(slots=True)
class _Scan:
    first_t: int
    precisions: dict[str, tuple[int, int]]
    first_price: dict[str, float]


def scan(path: Path) -> _Scan:
    """One pass over the file: the start time and each symbol's price/qty precision."""
    if not path.exists():
        raise ReplayError(f"replay file {path} does not exist")
    first_t: int | None = None
    prec: dict[str, tuple[int, int]] = {}
    first_price: dict[str, float] = {}
    for line in _lines(path):
        if first_t is None and line.t:
            first_t = line.t
        data = line.data
        if isinstance(data, dict) and data.get("e") == "aggTrade":
            sym = str(data["s"]).upper()
            pp, qp = prec.get(sym, (0, 0))
            prec[sym] = (max(pp, decimals_of(str(data["p"]))), max(qp, decimals_of(str(data["q"]))))
            first_price.setdefault(sym, float(data["p"]))
        else:
            for item in data if isinstance(data, list) else [data]:
                if not isinstance(item, dict):
                    continue
                if item.get("e") == "markPriceUpdate" and item.get("s"):
                    sym = str(item["s"]).upper()
                    prec.setdefault(sym, (0, 0))
                    first_price.setdefault(sym, float(item["p"]))
                elif item.get("e") == "forceOrder":
                    sym = str(item.get("o", {}).get("s", "")).upper()
                    if sym:
                        prec.setdefault(sym, (0, 0))
                        first_price.setdefault(sym, float(item["o"].get("ap") or item["o"]["p"]))
    if first_t is None or not prec:
        raise ReplayError(f"replay file {path} holds no combined-stream market messages")
    return _Scan(first_t, prec, first_price)


class ReplayMarket(Market):
    def __init__(
        self,
        path: str | Path,
        seed: int = 1,
        history_days: int = 30,
        retention: Retention | None = None,
    ) -> None:
        path = Path(path)
        info = scan(path)
        specs: list[SymbolSpec] = []
        for sym, (pp, qp) in sorted(info.precisions.items()):
            spec = (
                spec_from_precisions(sym, pp, qp)
                if pp or qp
                else spec_from_precisions(sym, *_known_precisions(sym))
            )
            price = info.first_price.get(sym, spec.start_price)
            specs.append(replace(spec, start_price=price))
        start = info.first_t // BLOCK_MS * BLOCK_MS
        super().__init__(specs, start, retention)
        self.path = path
        self.finished = False
        self.skipped = 0
        self._it = _lines(path)
        self._pending: _Line | None = next(self._it, None)
        self._ind: dict[str, IndicatorModel] = {}
        self._next_funding: dict[str, tuple[int, float]] = {}
        self._rows: dict[str, list[tuple[int, int, int, int, int, int, bool]]] = {}
        self._next_second = start + BLOCK_MS
        self._seen_mark: set[str] = set()
        for spec in specs:
            key = zlib.crc32(spec.symbol.encode())
            book = self.books[spec.symbol]
            self._ind[spec.symbol] = IndicatorModel(
                spec, np.random.default_rng([seed, key, 2]), spec.start_price
            )
            fill_prehistory(book, np.random.default_rng([seed, key, 1]), start, history_days, 20.0)
            book.funding_released = len(book.funding)
            book.hist.release_until(start)
            self._rows[spec.symbol] = []
            book.marks.append(
                start,
                mark=spec.start_price,
                index=spec.start_price,
                settle=spec.start_price,
                rate=INTEREST_RATE,
                next_funding=next_funding_after(start, spec.funding_interval_hours),
                cb_bps=0.0,
                oi=self._ind[spec.symbol].oi,
            )
            book.marks.release_until(start)

    def shock(self, symbol: str, bps: float) -> None:
        raise ValueError("a replayed market cannot be shocked")

    def force_regime(self, symbol: str, regime: str | None) -> None:
        raise ValueError("a replayed market has no regimes")

    def advance(self, to_ms: int) -> Release:
        to_ms = max(to_ms, self.now_ms)
        out: list[tuple[str, bytes, int]] = []
        while self._pending is not None and self._pending.t <= to_ms:
            line = self._pending
            self._seconds_until(line.t)
            try:
                agg_id = self._apply(line)
            except (KeyError, ValueError, TypeError):
                self.skipped += 1
                agg_id = -1
            out.append((line.stream, orjson.dumps(line.data), agg_id))
            self._pending = next(self._it, None)
        self._seconds_until(to_ms)
        self._flush_rows()
        if self._pending is None:
            self.finished = True
        return Release(to_ms, self._release_all(to_ms), out)

    # -- internals --------------------------------------------------------------------------

    def _seconds_until(self, t_ms: int) -> None:
        while self._next_second <= t_ms:
            t = self._next_second
            for sym, ind in self._ind.items():
                ind.on_second(False, 0.0)
                book = self.books[sym]
                if sym not in self._seen_mark:
                    self._synth_mark(sym, t)
                if t % FIVE_MIN_MS == 0:
                    mark = float(book.marks.value("mark", book.marks.n - 1))
                    book.hist.append(t, **ind.five_minute_row(mark, False))
            self._next_second += BLOCK_MS

    def _synth_mark(self, sym: str, t: int) -> None:
        """A recording without markPrice lines still needs a mark: use the last trade."""
        book = self.books[sym]
        self._flush_rows()
        last = book.tape.cols(book.tape.n - 1, book.tape.n) if book.tape.n else None
        if last is None:
            return
        price = float(last.price[0]) / book.spec.price_scale
        ind = self._ind[sym]
        book.marks.append(
            t,
            mark=price,
            index=price,
            settle=price,
            rate=INTEREST_RATE,
            next_funding=next_funding_after(t, book.spec.funding_interval_hours),
            cb_bps=ind.cb_bps,
            oi=ind.oi,
        )

    def _apply(self, line: _Line) -> int:
        data = line.data
        items = data if isinstance(data, list) else [data]
        agg_id = -1
        for item in items:
            kind = item.get("e")
            if kind == "aggTrade":
                agg_id = self._trade(item)
            elif kind == "markPriceUpdate":
                self._mark(item)
            elif kind == "forceOrder":
                self._liquidation(item)
        return agg_id

    def _trade(self, d: dict[str, Any]) -> int:
        sym = str(d["s"]).upper()
        spec = self.specs[sym]
        price = to_units(str(d["p"]), spec.price_precision)
        qty = to_units(str(d["q"]), spec.qty_precision)
        buyer_maker = bool(d["m"])
        row = (int(d["a"]), int(d["T"]), price, qty, int(d["f"]), int(d["l"]), buyer_maker)
        self._rows[sym].append(row)
        q = qty / spec.qty_scale
        self._ind[sym].on_trades(0.0 if buyer_maker else q, q if buyer_maker else 0.0)
        return row[0]

    def _flush_rows(self) -> None:
        for sym, rows in self._rows.items():
            if not rows:
                continue
            cols = list(zip(*rows, strict=True))
            self.books[sym].tape.append(
                np.asarray(cols[0], np.int64),
                np.asarray(cols[1], np.int64),
                np.asarray(cols[2], np.int64),
                np.asarray(cols[3], np.int64),
                np.asarray(cols[4], np.int64),
                np.asarray(cols[5], np.int64),
                np.asarray(cols[6], np.bool_),
            )
            rows.clear()

    def _mark(self, d: dict[str, Any]) -> None:
        sym = str(d["s"]).upper()
        book = self.books[sym]
        self._seen_mark.add(sym)
        t = int(d["E"])
        mark = float(d["p"])
        rate = float(d.get("r") or 0.0)
        nxt = int(d.get("T") or next_funding_after(t, book.spec.funding_interval_hours))
        prev = self._next_funding.get(sym)
        if prev is not None and nxt > prev[0] and prev[0] <= t:
            book.funding.append(SimFunding(sym, prev[0], prev[1], mark))
        self._next_funding[sym] = (nxt, rate)
        ind = self._ind[sym]
        if t >= book.marks.value("t", book.marks.n - 1):
            book.marks.append(
                t,
                mark=mark,
                index=float(d.get("i") or mark),
                settle=float(d.get("P") or mark),
                rate=rate,
                next_funding=nxt,
                cb_bps=ind.cb_bps,
                oi=ind.oi,
            )

    def _liquidation(self, d: dict[str, Any]) -> None:
        o = d["o"]
        sym = str(o["s"]).upper()
        spec = self.specs[sym]

        def units(text: Any, precision: int) -> int:
            try:
                return to_units(str(text), precision)
            except ValueError:
                value: int = round(float(text) * 10**precision)
                return value

        self.books[sym].liquidations.append(
            LiquidationEvent(
                sym,
                int(o.get("T") or d["E"]),
                str(o["S"]),
                units(o["p"], spec.price_precision),
                units(o.get("ap") or o["p"], spec.price_precision),
                units(o["q"], spec.qty_precision),
                int(d.get("E") or o.get("T")),
            )
        )


def _known_precisions(symbol: str) -> tuple[int, int]:
    spec = spec_for(symbol)
    return spec.price_precision, spec.qty_precision
