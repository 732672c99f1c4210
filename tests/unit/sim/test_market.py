"""The market model: determinism, tape invariants, and the structure features look for."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from arbengine.sim.market_model import (
    DAY_MS,
    FIVE_MIN_MS,
    HOUR_MS,
    SyntheticMarket,
    agg_trade_payloads,
    liquidation_payload,
    mark_payload,
)
from arbengine.sim.release_series import Series
from arbengine.sim.symbols import spec_for

START = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def market(
    seed: int = 1,
    symbols: tuple[str, ...] = ("BTCUSDT",),
    rate: float = 20.0,
    start: int = START,
    history_days: int = 0,
) -> SyntheticMarket:
    specs = [spec_for(s) for s in symbols]
    return SyntheticMarket(
        specs, start, seed, {s.symbol: rate for s in specs}, history_days=history_days
    )


def columns(m: SyntheticMarket, symbol: str) -> dict[str, np.ndarray]:
    c = m.books[symbol].tape.released_cols()
    return {
        k: getattr(c, k).copy() for k in ("a", "t", "price", "qty", "first", "last", "buyer_maker")
    }


def test_same_seed_same_tape_whatever_the_stepping() -> None:
    one = market(symbols=("BTCUSDT", "SOLUSDT"))
    one.advance(START + 120_000)
    other = market(symbols=("BTCUSDT", "SOLUSDT"))
    rng = np.random.default_rng(7)
    t = START
    while t < START + 120_000:
        t = min(START + 120_000, t + int(rng.integers(1, 3_000)))
        other.advance(t)
    for symbol in ("BTCUSDT", "SOLUSDT"):
        a, b = columns(one, symbol), columns(other, symbol)
        assert len(a["a"]) > 1000
        for key in a:
            assert np.array_equal(a[key], b[key]), key


def test_different_seed_gives_a_different_tape() -> None:
    a, b = market(seed=1), market(seed=2)
    a.advance(START + 30_000)
    b.advance(START + 30_000)
    assert not np.array_equal(
        columns(a, "BTCUSDT")["price"][:50], columns(b, "BTCUSDT")["price"][:50]
    )


def test_adding_a_symbol_does_not_change_another_symbols_tape() -> None:
    alone = market(symbols=("ETHUSDT",))
    paired = market(symbols=("BTCUSDT", "ETHUSDT"))
    alone.advance(START + 30_000)
    paired.advance(START + 30_000)
    assert np.array_equal(columns(alone, "ETHUSDT")["price"], columns(paired, "ETHUSDT")["price"])


def test_tape_invariants_ids_contiguous_prices_on_tick_sizes_on_step() -> None:
    m = market(symbols=("BTCUSDT", "SOLUSDT", "XRPUSDT", "ALT001USDT", "ALT002USDT"))
    m.advance(START + 300_000)
    for symbol in m.symbols:
        spec = m.specs[symbol]
        c = columns(m, symbol)
        assert np.all(np.diff(c["a"]) == 1), "aggregate ids must be contiguous"
        assert np.all(c["first"][1:] == c["last"][:-1] + 1), "trade ids must chain"
        assert np.all(c["last"] >= c["first"])
        assert np.all(np.diff(c["t"]) >= 0)
        assert np.all(c["t"] <= m.now_ms)
        assert np.all(c["price"] % spec.tick == 0)
        assert np.all(c["qty"] % spec.step == 0)
        assert np.all(c["qty"] >= spec.min_qty)


def test_trade_rate_is_the_configured_poisson_rate() -> None:
    m = market(rate=50.0)
    m.books["BTCUSDT"]
    m.force_regime("BTCUSDT", "calm")
    m.advance(START + 600_000)
    n = m.books["BTCUSDT"].tape.released
    assert 50 * 600 * 0.9 < n < 50 * 600 * 1.1


def test_volatile_regime_moves_more_and_trades_more() -> None:
    calm, wild = market(rate=20.0), market(rate=20.0)
    calm.force_regime("BTCUSDT", "calm")
    wild.force_regime("BTCUSDT", "volatile")
    calm.advance(START + 1_800_000)
    wild.advance(START + 1_800_000)

    def per_second_returns(m: SyntheticMarket) -> np.ndarray:
        marks = m.books["BTCUSDT"].marks.col("mark").astype(float)
        return np.diff(np.log(marks))

    assert per_second_returns(wild).std() > 2.5 * per_second_returns(calm).std()
    assert wild.books["BTCUSDT"].tape.released > 2 * calm.books["BTCUSDT"].tape.released
    assert wild.books["BTCUSDT"].liq_released > 5 * max(1, calm.books["BTCUSDT"].liq_released)


def test_regimes_switch_by_themselves() -> None:
    m = market(rate=2.0)
    seen = set()
    t = START
    for _ in range(3 * 3600 // 60):
        t += 60_000
        m.advance(t)
        seen.add(m.volatile("BTCUSDT"))
    assert seen == {True, False}


def test_sizes_are_heavy_tailed() -> None:
    m = market(rate=50.0)
    m.advance(START + 600_000)
    spec = m.specs["BTCUSDT"]
    c = columns(m, "BTCUSDT")
    notional = c["qty"] / spec.qty_scale * c["price"] / spec.price_scale
    median = np.median(notional)
    assert np.max(notional) > 50 * median
    assert np.mean(notional > 10 * median) > 0.005


def test_taker_side_clusters() -> None:
    m = market(rate=50.0)
    m.advance(START + 600_000)
    buy = ~columns(m, "BTCUSDT")["buyer_maker"].astype(bool)
    same = np.mean(buy[1:] == buy[:-1])
    assert same > 0.6


def test_order_flow_leads_price() -> None:
    m = market(rate=50.0)
    m.advance(START + 3_600_000)
    spec = m.specs["BTCUSDT"]
    c = columns(m, "BTCUSDT")
    signed = np.where(c["buyer_maker"].astype(bool), -1.0, 1.0) * c["qty"] / spec.qty_scale
    minute = (c["t"] - START) // 60_000
    flow = np.bincount(minute, weights=signed)
    last_price = np.zeros(flow.size)
    for i in range(flow.size):
        last_price[i] = c["price"][minute == i][-1]
    moves = np.diff(np.log(last_price))
    assert np.corrcoef(flow[1:], moves)[0, 1] > 0.2


def test_funding_settles_on_the_utc_boundary() -> None:
    boundary = (START // (8 * HOUR_MS) + 1) * 8 * HOUR_MS
    m = market(start=boundary - 5_000, rate=1.0)
    m.advance(boundary - 1_000)
    book = m.books["BTCUSDT"]
    assert book.latest_mark().next_funding == boundary
    assert book.funding_released == 0
    release = m.advance(boundary + 1_000)
    fundings = release.symbols[0].fundings
    assert [f.t for f in fundings] == [boundary]
    assert -0.003 <= fundings[0].rate <= 0.003
    assert book.latest_mark().next_funding == boundary + 8 * HOUR_MS
    row = book.funding_rows(None, None, 10)[-1]
    assert row["fundingTime"] == boundary
    assert row["symbol"] == "BTCUSDT"


def test_five_minute_rows_sum_the_tapes_taker_volume() -> None:
    first = (START // FIVE_MIN_MS + 1) * FIVE_MIN_MS
    m = market(rate=20.0)
    m.advance(first + FIVE_MIN_MS + 1_000)
    book = m.books["BTCUSDT"]
    spec = book.spec
    rows = book.hist_rows("takerlongshortRatio", "5m", None, None, 30, m.now_ms)
    last = rows[-1]
    assert last["timestamp"] == first + FIVE_MIN_MS
    c = columns(m, "BTCUSDT")
    inside = (c["t"] >= first) & (c["t"] < first + FIVE_MIN_MS)
    buys = inside & ~c["buyer_maker"].astype(bool)
    sells = inside & c["buyer_maker"].astype(bool)
    assert float(last["buyVol"]) == pytest.approx(c["qty"][buys].sum() / spec.qty_scale, abs=1e-3)
    assert float(last["sellVol"]) == pytest.approx(c["qty"][sells].sum() / spec.qty_scale, abs=1e-3)
    oi = book.hist_rows("openInterestHist", "5m", None, None, 1, m.now_ms)[0]
    assert set(oi) == {"symbol", "sumOpenInterest", "sumOpenInterestValue", "timestamp"}
    ratio = book.hist_rows("topLongShortPositionRatio", "5m", None, None, 1, m.now_ms)[0]
    assert float(ratio["longAccount"]) + float(ratio["shortAccount"]) == pytest.approx(
        1.0, abs=2e-4
    )


def test_thirty_days_of_history_exist_at_start() -> None:
    m = market(history_days=30)
    book = m.books["BTCUSDT"]
    rows = book.hist_rows("globalLongShortAccountRatio", "5m", None, None, 500, m.now_ms)
    assert len(rows) == 500
    two_hourly = book.hist_rows("openInterestHist", "2h", START - 30 * DAY_MS, None, 500, m.now_ms)
    assert len(two_hourly) >= 12 * 29
    assert all(r["timestamp"] % (2 * HOUR_MS) == 0 for r in two_hourly)
    funding = book.funding_rows(None, None, 1000)
    assert 89 <= len(funding) <= 91
    assert all(f["fundingTime"] % (8 * HOUR_MS) == 0 for f in funding)


def test_history_is_generated_in_bulk_as_row_by_row() -> None:
    """``Series.extend`` (the prehistory) holds what ``append`` would, and grows past it."""
    m = market(history_days=2)
    bulk = m.books["BTCUSDT"].hist
    rows = Series({"oi": np.float64})
    one_by_one = Series({"oi": np.float64}, capacity=4)
    for i, t in enumerate(bulk.col("t").tolist()):
        one_by_one.append(int(t), oi=float(bulk.col("oi")[i]))
    rows.extend(bulk.col("t"), oi=bulk.col("oi"))
    rows.extend([bulk.col("t")[-1] + FIVE_MIN_MS], oi=[1.0])
    for series in (rows, one_by_one):
        series.release_until(START + DAY_MS)
    assert np.array_equal(rows.col("t")[:-1], one_by_one.col("t"))
    assert np.array_equal(rows.col("oi")[:-1], one_by_one.col("oi"))
    assert rows.col("oi")[-1] == 1.0


def test_shock_moves_the_price_from_the_next_block() -> None:
    m = market(rate=20.0)
    m.advance(START + 5_000)
    before = m.books["BTCUSDT"].latest_mark().mark
    m.shock("BTCUSDT", -500)
    m.advance(START + 8_000)
    after = m.books["BTCUSDT"].latest_mark().mark
    assert after < before * 0.97


def test_stream_payloads_match_the_tape_and_binance_shapes() -> None:
    m = market(symbols=("BTCUSDT", "SOLUSDT"))
    m.force_regime("BTCUSDT", "volatile")
    release = m.advance(START + 60_000)
    for sr in release.symbols:
        book = m.books[sr.symbol]
        payloads, ids = agg_trade_payloads(book.spec, book.tape.cols(sr.lo, sr.hi))
        rows = book.tape.rows(sr.lo, sr.hi)
        decoded = [orjson.loads(p) for p in payloads]
        assert [d["a"] for d in decoded] == ids
        for d, row in zip(decoded, rows, strict=True):
            assert list(d) == ["e", "E", "a", "s", "p", "q", "f", "l", "T", "m"]
            assert d["e"] == "aggTrade"
            assert d["s"] == sr.symbol
            assert d["E"] >= d["T"]
            assert {k: d[k] for k in row} == row
    mark = mark_payload(m.books["BTCUSDT"].latest_mark())
    assert list(mark) == ["e", "E", "s", "p", "P", "i", "r", "T"]
    assert mark["e"] == "markPriceUpdate"
    liq = m.books["BTCUSDT"].liquidations[0]
    payload = liquidation_payload(m.specs["BTCUSDT"], liq)
    assert payload["e"] == "forceOrder"
    assert set(payload["o"]) == {"s", "S", "o", "f", "q", "p", "ap", "X", "l", "z", "T"}
    assert payload["o"]["S"] in ("BUY", "SELL")


def test_coinbase_ticker_tracks_the_index() -> None:
    m = market()
    m.advance(START + 10_000)
    ticker = m.coinbase_ticker("BTC-USD")
    assert ticker is not None
    assert set(ticker) == {"ask", "bid", "volume", "trade_id", "price", "size", "time"}
    assert isinstance(ticker["trade_id"], int)
    index = m.books["BTCUSDT"].latest_mark().index
    assert abs(float(ticker["price"]) / index - 1) < 0.005
    assert m.coinbase_ticker("DOGE-USD") is None


def test_an_unknown_symbol_trades_with_a_generic_contract() -> None:
    m = market(symbols=("DOGEUSDT",))
    release = m.advance(START + 10_000)
    spec = m.specs["DOGEUSDT"]
    book = m.books["DOGEUSDT"]
    payloads, _ = agg_trade_payloads(
        spec, book.tape.cols(release.symbols[0].lo, release.symbols[0].hi)
    )
    first = orjson.loads(payloads[0])
    assert first["s"] == "DOGEUSDT"
    assert len(first["p"].split(".")[1]) == spec.price_precision
