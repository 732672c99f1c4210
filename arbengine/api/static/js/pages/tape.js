// The Tape page: per symbol, the stored aggTrades as OHLCV bars, liquidations per bar and
// side, and whether the tape is complete: per-day completeness, the gaps repaired and the
// holes left, with their trade ids and where they lie in time. The symbol, range and bar
// width are in the URL (?symbol=&range=&interval=), so a view can be linked to.
"use strict";

import { apiGet } from "../api.js";
import { chartTime, makeChart } from "../charts.js";
import { empty, failed, fill, h, loading, panel, picker, refill, stat, table, timeEl } from "../dom.js";
import { DASH, count, number, percent, price } from "../format.js";
import { startPage } from "../layout.js";
import { poll } from "../poll.js";

const MINUTE = 60000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const REFRESH_MS = 30000;
/** Days and gaps: a month back, whatever the chart shows. */
const RECORDS_SPAN_MS = 30 * DAY;
const MAX_BARS = 1500;
const MAX_LIQUIDATION_ROWS = 50;

/** [value, label, span, default bar width]. */
const RANGES = [
  ["6h", "6 hours", 6 * HOUR, "5m"],
  ["24h", "24 hours", DAY, "15m"],
  ["3d", "3 days", 3 * DAY, "1h"],
  ["7d", "7 days", 7 * DAY, "1h"],
];
const INTERVALS = { "1m": MINUTE, "5m": 5 * MINUTE, "15m": 15 * MINUTE, "1h": HOUR, "4h": 4 * HOUR };
const OUTCOMES = {
  repaired: ["repaired", "ok"],
  hole: ["hole", "bad"],
  partly_repaired: ["partly repaired", "warn"],
  open: ["being repaired", "warn"],
};

const baseAsset = (symbol) => symbol.replace(/(USDT|USDC|BUSD)$/, "") || symbol;
const spanOf = (range) => RANGES.find((r) => r[0] === range)[2];
const fits = (range, interval) => spanOf(range) / INTERVALS[interval] <= MAX_BARS;

function badge(text, tone) {
  return h("span", { class: `badge ${tone}`.trim() }, text);
}

/** The view asked for in the URL, with anything unknown replaced by a default. */
function viewFromUrl(symbols) {
  const params = new URLSearchParams(location.search);
  const symbol = symbols.includes(params.get("symbol")) ? params.get("symbol") : symbols[0];
  const range = RANGES.some((r) => r[0] === params.get("range")) ? params.get("range") : "24h";
  const asked = params.get("interval");
  const interval = asked in INTERVALS && fits(range, asked) ? asked : RANGES.find((r) => r[0] === range)[3];
  return { symbol, range, interval };
}

function keepInUrl(view) {
  const params = new URLSearchParams(view);
  history.replaceState(null, "", `${location.pathname}?${params}`);
}

// -- the panels -----------------------------------------------------------------------------

function summaryStats(meta) {
  if (!meta || meta.rows === 0) {
    return empty("No trades stored for this symbol yet: the collector stores the tape as it arrives and catches up on start.");
  }
  return h(
    "div",
    { class: "stats" },
    stat("Trades stored", count(meta.rows), { key: "rows" }),
    stat("Trade ids", `${count(meta.first_id)} – ${count(meta.last_id)}`, { key: "ids" }),
    stat("First trade", timeEl(meta.first_ts), { key: "first" }),
    stat("Last trade", timeEl(meta.last_ts), { key: "last" }),
    stat("Complete", percent(meta.completeness, 2), {
      key: "completeness", tone: meta.completeness === 1 ? "pos" : "neg",
    }),
    stat("Gaps seen", count(meta.gaps_seen), { key: "gaps-seen" }),
    stat("Gaps repaired", count(meta.gaps_repaired), { key: "gaps-repaired", tone: meta.gaps_repaired ? "pos" : "" }),
    stat("Holes left", count(meta.holes_left), { key: "holes-left", tone: meta.holes_left ? "neg" : "" }),
  );
}

function daysTable(days) {
  return table(
    [
      { label: "Day (UTC)", value: (d) => d.day, key: "day" },
      {
        label: "Complete", value: (d) => percent(d.completeness, 2), num: true, key: "completeness",
        tone: (d) => (d.completeness === 1 ? "pos" : "neg"),
      },
      { label: "Trades stored", value: (d) => count(d.rows), num: true, key: "rows" },
      { label: "Ids missing", value: (d) => count(d.missing), num: true, key: "missing", tone: (d) => (d.missing ? "neg" : "") },
      { label: "First id", value: (d) => count(d.first_id), num: true },
      { label: "Last id", value: (d) => count(d.last_id), num: true },
      { label: "Counted", value: (d) => timeEl(Date.parse(d.checked_at)) },
    ],
    days,
    {
      emptyText: "No day counted yet: the continuity check counts today and yesterday every few minutes while it collects.",
      rowData: (d) => ({ day: d.day }),
    },
  );
}

function gapsTable(gaps) {
  return table(
    [
      { label: "Outcome", value: (g) => badge(...(OUTCOMES[g.outcome] || [g.outcome, ""])), key: "outcome" },
      { label: "Trade ids", value: (g) => `${count(g.from_id)} – ${count(g.to_id)}`, key: "ids" },
      { label: "Ids", value: (g) => count(g.ids), num: true, key: "count" },
      { label: "After the trade of", value: (g) => timeEl(g.prev_ts), key: "after" },
      { label: "Before the trade of", value: (g) => timeEl(g.next_ts), key: "before" },
      { label: "Seen", value: (g) => timeEl(Date.parse(g.seen_at)) },
      { label: "Settled", value: (g) => (g.settled_at ? timeEl(Date.parse(g.settled_at)) : DASH) },
    ],
    gaps,
    {
      emptyText: "No gap in the last 30 days: every trade id arrived, in order.",
      rowData: (g) => ({ gap: `${g.from_id}-${g.to_id}` }),
    },
  );
}

function liquidationTotals(totals, asset) {
  const side = (name) => totals.find((t) => t.side === name) || { count: 0, qty: 0, notional: 0 };
  const longs = side("SELL");
  const shorts = side("BUY");
  return h(
    "div",
    { class: "stats" },
    stat("Longs liquidated", `${count(longs.count)} · ${number(longs.notional, 0, "USDT")}`, { key: "longs", tone: longs.count ? "neg" : "" }),
    stat("Shorts liquidated", `${count(shorts.count)} · ${number(shorts.notional, 0, "USDT")}`, { key: "shorts", tone: shorts.count ? "pos" : "" }),
    stat("Quantity", `${number(longs.qty + shorts.qty, 3, asset)}`, { key: "qty" }),
  );
}

function liquidationBars(bars, asset) {
  const rows = [...bars].sort((a, b) => b.ts - a.ts || a.side.localeCompare(b.side)).slice(0, MAX_LIQUIDATION_ROWS);
  return table(
    [
      { label: "Bar", value: (b) => timeEl(b.ts), key: "bar" },
      { label: "Side", value: (b) => (b.side === "SELL" ? "longs" : "shorts"), key: "side", tone: (b) => (b.side === "SELL" ? "neg" : "pos") },
      { label: "Orders", value: (b) => count(b.count), num: true, key: "count" },
      { label: "Quantity", value: (b) => number(b.qty, 3, asset), num: true, key: "qty" },
      { label: "Notional", value: (b) => number(b.notional, 0, "USDT"), num: true, key: "notional" },
    ],
    rows,
    {
      emptyText: "No liquidation in this range.",
      caption: "Bars with liquidations, latest first",
      rowData: (b) => ({ ts: String(b.ts), side: b.side }),
    },
  );
}

// -- the charts -----------------------------------------------------------------------------

async function priceChart(parent) {
  const made = await makeChart(parent, { label: "Price and volume per bar", height: 340 });
  if (!made) return null;
  const { chart, lib } = made;
  chart.timeScale().applyOptions({ lockVisibleTimeRangeOnResize: true });
  const styles = getComputedStyle(document.documentElement);
  const up = styles.getPropertyValue("--pos").trim();
  const down = styles.getPropertyValue("--neg").trim();
  const candles = chart.addSeries(lib.CandlestickSeries, {
    upColor: up, downColor: down, borderUpColor: up, borderDownColor: down, wickUpColor: up, wickDownColor: down,
  });
  candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.3 } });
  const volume = chart.addSeries(lib.HistogramSeries, { priceScaleId: "volume", priceFormat: { type: "volume" }, lastValueVisible: false, priceLineVisible: false });
  volume.priceScale().applyOptions({ scaleMargins: { top: 0.75, bottom: 0 } });
  return {
    made,
    show(bars) {
      candles.setData(bars.map((b) => ({ time: chartTime(b.ts), open: b.open, high: b.high, low: b.low, close: b.close })));
      volume.setData(bars.map((b) => ({
        time: chartTime(b.ts), value: b.volume, color: `${b.close >= b.open ? up : down}66`,
      })));
    },
  };
}

async function liquidationChart(parent) {
  const made = await makeChart(parent, { label: "Liquidations per bar: shorts above the line, longs below", height: 200 });
  if (!made) return null;
  const { chart, lib } = made;
  chart.timeScale().applyOptions({ lockVisibleTimeRangeOnResize: true });
  const styles = getComputedStyle(document.documentElement);
  const common = { priceFormat: { type: "volume" }, lastValueVisible: false, priceLineVisible: false };
  const shorts = chart.addSeries(lib.HistogramSeries, { ...common, color: styles.getPropertyValue("--pos").trim(), title: "shorts" });
  const longs = chart.addSeries(lib.HistogramSeries, { ...common, color: styles.getPropertyValue("--neg").trim(), title: "longs" });
  return {
    made,
    show(bars) {
      const side = (name, sign) =>
        bars.filter((b) => b.side === name).map((b) => ({ time: chartTime(b.ts), value: sign * b.notional }));
      shorts.setData(side("BUY", 1));
      longs.setData(side("SELL", -1));
    },
  };
}

// -- the page -------------------------------------------------------------------------------

startPage({
  title: "Tape",
  stylesheet: true,
  async render(main) {
    const status = h("div", { id: "tape-status" });
    main.append(status);
    let metas;
    try {
      metas = (await apiGet("/api/trades/meta")).symbols;
    } catch (err) {
      fill(status, failed(err));
      return;
    }
    if (metas.length === 0) {
      main.append(empty("This daemon tracks no symbol: set [collect] symbols in its settings."));
      return;
    }
    const symbols = metas.map((m) => m.symbol);
    const view = viewFromUrl(symbols);

    const intervalPicker = picker("Bar", "tape-interval", Object.keys(INTERVALS), view.interval, (value) => {
      view.interval = value;
      changed(true);
    });
    const intervalSelect = intervalPicker.querySelector("select");
    const markIntervals = () => {
      for (const option of intervalSelect.options) option.disabled = !fits(view.range, option.value);
    };
    const toolbar = h(
      "div",
      { class: "toolbar" },
      picker("Symbol", "tape-symbol", symbols, view.symbol, (value) => {
        view.symbol = value;
        changed(true);
      }),
      picker("Range", "tape-range", RANGES.map(([value, label]) => [value, label]), view.range, (value) => {
        view.range = value;
        if (!fits(view.range, view.interval)) {
          view.interval = RANGES.find((r) => r[0] === value)[3];
          intervalSelect.value = view.interval;
        }
        markIntervals();
        changed(true);
      }),
      intervalPicker,
    );
    markIntervals();

    const [summaryPanel, summaryBody] = panel("Tape", { id: "tape-summary", wide: true });
    const [chartPanel, chartBody] = panel("Price and volume", { id: "tape-chart", wide: true });
    const chartNote = h("p", { class: "note", id: "tape-chart-note" });
    const [liqPanel, liqBody] = panel("Liquidations", { id: "tape-liquidations", wide: true });
    const liqTotals = h("div", { id: "tape-liquidation-totals" });
    const liqRows = h("div", { id: "tape-liquidation-bars" });
    const [daysPanel, daysBody] = panel("Completeness per day (last 30 days)", { id: "tape-days", wide: true });
    const [gapsPanel, gapsBody] = panel("Gaps and holes (last 30 days)", { id: "tape-gaps", wide: true });
    const daysList = h("div", { id: "tape-days-list" }, loading());
    const gapsList = h("div", { id: "tape-gaps-list" }, loading());
    summaryBody.append(loading());
    daysBody.append(
      h("p", { class: "note" }, "Trades stored over the ids between the day's first and last: below 100% some ids are missing."),
      daysList,
    );
    gapsBody.append(
      h("p", { class: "note" }, "Gaps the collector or the continuity check met, and what became of them. A hole is " +
        "ids the exchange no longer has: features computed across it miss those trades."),
      gapsList,
    );
    main.append(toolbar, summaryPanel, chartPanel, liqPanel, daysPanel, gapsPanel);

    const prices = await priceChart(chartBody);
    chartBody.append(chartNote);
    liqBody.append(liqTotals);
    const liquidations = await liquidationChart(liqBody);
    liqBody.append(
      h("p", { class: "note" }, "Forced SELL orders liquidate longs, BUY orders shorts. A lower bound: Binance " +
        "reports at most one liquidation per symbol per second."),
      liqRows,
    );

    let refit = true;
    async function load() {
      const { symbol, range, interval } = view;
      const to = Date.now();
      const from = to - spanOf(range);
      const window = { symbol, from, to };
      const [meta, summary, liq, days, gaps] = await Promise.all([
        apiGet("/api/trades/meta"),
        apiGet("/api/trades/summary", { ...window, interval }),
        apiGet("/api/liquidations", { ...window, interval }),
        apiGet("/api/trades/days", { symbol, from: to - RECORDS_SPAN_MS, to }),
        apiGet("/api/trades/gaps", { symbol, from: to - RECORDS_SPAN_MS, to }),
      ]);
      if (symbol !== view.symbol || range !== view.range || interval !== view.interval) return; // changed meanwhile
      const asset = baseAsset(symbol);
      summaryPanel.querySelector("h2").textContent = `${symbol} tape`;
      fill(summaryBody, summaryStats(meta.symbols.find((m) => m.symbol === symbol)));
      const bars = summary.bars;
      const traded = bars.reduce((sum, b) => sum + b.trades, 0);
      fill(
        chartNote,
        bars.length
          ? `${count(bars.length)} bars of ${interval} over the last ${RANGES.find((r) => r[0] === range)[1]}: ` +
              `${count(traded)} trades, last close ${price(bars[bars.length - 1].close)} USDT, ` +
              `volume ${number(bars.reduce((sum, b) => sum + b.volume, 0), 3, asset)}.`
          : `No trades stored for ${symbol} in the last ${RANGES.find((r) => r[0] === range)[1]}.`,
      );
      if (prices) prices.show(bars);
      if (liquidations) liquidations.show(liq.bars);
      if (refit) {
        if (prices) prices.made.chart.timeScale().fitContent();
        if (liquidations) liquidations.made.chart.timeScale().fitContent();
        refit = false;
      }
      fill(liqTotals, liquidationTotals(liq.totals.filter((t) => t.symbol === symbol), asset));
      refill(liqRows, liquidationBars(liq.bars, asset));
      refill(daysList, daysTable(days.days));
      refill(
        gapsList,
        gapsTable(gaps.rows),
        gaps.truncated ? h("p", { class: "note" }, `The ${gaps.rows.length} newest gaps are shown.`) : null,
      );
      fill(status);
    }

    const onError = (err) => fill(status, failed(err));
    let stop = null;
    function changed(again = false) {
      keepInUrl(view);
      refit = refit || again;
      if (stop) stop();
      stop = poll(load, REFRESH_MS, { onError });
    }

    await load().catch(onError);
    stop = poll(load, REFRESH_MS, { onError, immediate: false });
  },
});
