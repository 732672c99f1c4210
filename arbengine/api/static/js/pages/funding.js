// Funding: one symbol's funding rate and mark price over a chosen range and bar interval
// (bars built by the daemon from its premiumIndex samples), the settlements of the last 7
// days on the same chart and in a table, the newest samples, and every symbol's 7-day and
// year-to-date statistics. The choice is kept in the address (?symbol=&interval=&range=)
// so a view can be bookmarked and shared.
"use strict";

import { apiGet } from "../api.js";
import { chartTime, makeChart } from "../charts.js";
import { empty, fill, h, panel, picker, stat, table, timeEl } from "../dom.js";
import { count, number, percent, price, tone } from "../format.js";
import { annualRate, fundingRate, loadFundingStats } from "../funding_data.js";
import { startPage } from "../layout.js";
import { keepFresh } from "../market_parts.js";

const MINUTE_MS = 60000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
const INTERVALS = [
  ["1m", MINUTE_MS],
  ["5m", 5 * MINUTE_MS],
  ["15m", 15 * MINUTE_MS],
  ["30m", 30 * MINUTE_MS],
  ["1h", HOUR_MS],
  ["4h", 4 * HOUR_MS],
  ["1d", DAY_MS],
];
const RANGES = [
  ["6h", "6 hours", 6 * HOUR_MS],
  ["24h", "24 hours", DAY_MS],
  ["3d", "3 days", 3 * DAY_MS],
  ["7d", "7 days", 7 * DAY_MS],
  ["30d", "30 days", 30 * DAY_MS],
  ["90d", "90 days", 90 * DAY_MS],
];
const MAX_BARS = 1500; // /api/kline's cap per request
const DEFAULT_INTERVAL = "1h";
const DEFAULT_RANGE = "7d";
const SAMPLES_SPAN_MS = 5 * MINUTE_MS;
const SAMPLES_SHOWN = 10;
const CHARTS_EVERY_MS = 30000;
const RATES_EVERY_MS = 5000;
const SAMPLES_EVERY_MS = 10000;
const STATS_EVERY_MS = 60000;

const intervalMs = new Map(INTERVALS);
const rangeMs = new Map(RANGES.map(([key, , ms]) => [key, ms]));
const rangeText = new Map(RANGES.map(([key, text]) => [key, text]));

/** The choice in the address, each value checked against what exists (else the default). */
function choiceFromAddress(symbols) {
  const query = new URLSearchParams(location.search);
  const pick = (key, allowed, fallback) => (allowed.includes(query.get(key)) ? query.get(key) : fallback);
  return {
    symbol: pick("symbol", symbols, symbols[0]),
    interval: pick("interval", [...intervalMs.keys()], DEFAULT_INTERVAL),
    range: pick("range", [...rangeMs.keys()], DEFAULT_RANGE),
  };
}

function keepInAddress(choice) {
  const query = new URLSearchParams(choice);
  history.replaceState(null, "", `${location.pathname}?${query}`);
}

/** The window asked of /api/kline: the range, cut to the last 1500 bars of the interval. */
function klineWindow(choice, now) {
  const barMs = intervalMs.get(choice.interval);
  const wanted = rangeMs.get(choice.range);
  const span = Math.min(wanted, barMs * MAX_BARS);
  return { from: now - span, to: now, cut: span < wanted, span };
}

function spanText(ms) {
  return ms % DAY_MS === 0 ? `${ms / DAY_MS} days` : `${number(ms / HOUR_MS, 0)} hours`;
}

const percentFormat = {
  type: "custom",
  minMove: 0.00001,
  formatter: (value) => `${value.toFixed(4)}%`,
};

// -- the charts of one symbol ----------------------------------------------------------------

/**
 * Empty slots for every bar of the window the daemon has no sample for: the chart spaces
 * its points evenly, so without them a day without samples would take no room at all and
 * the time axis would lie.
 */
function withGaps(points, w, barMs) {
  const have = new Set(points.map((p) => p.time));
  const slots = [];
  for (let t = w.from - (w.from % barMs); t < w.to; t += barMs) {
    const time = chartTime(t);
    if (!have.has(time)) slots.push({ time });
  }
  return [...points, ...slots].sort((a, b) => a.time - b.time);
}

const cssColour = (name, fallback) =>
  getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

async function fundingChart(parent) {
  const made = await makeChart(parent, { label: "Funding rate per bar", height: 260 });
  if (!made) return null;
  const { chart, lib, box } = made;
  const rate = chart.addSeries(lib.LineSeries, {
    color: cssColour("--accent", "#1849a9"),
    lineWidth: 2,
    priceFormat: percentFormat,
  });
  return {
    box,
    draw(bars, w, barMs) {
      const points = bars.map((b) => ({ time: chartTime(b.ts), value: b.close * 100 }));
      // Few bars in a wide window: dots show where the samples are (the line joins them).
      rate.applyOptions({ pointMarkersVisible: points.length <= 100 });
      rate.setData(withGaps(points, w, barMs));
      chart.timeScale().fitContent();
    },
  };
}

async function settledChart(parent) {
  const made = await makeChart(parent, { label: "Settled fundings, last 7 days", height: 180 });
  if (!made) return null;
  const { chart, lib, box } = made;
  const columns = chart.addSeries(lib.HistogramSeries, { priceFormat: percentFormat, priceLineVisible: false });
  return {
    box,
    draw(settlements) {
      columns.setData(
        settlements.map((s) => ({
          time: chartTime(s.ts),
          value: s.funding_rate * 100,
          color: s.funding_rate >= 0 ? cssColour("--pos", "#05603a") : cssColour("--neg", "#b42318"),
        })),
      );
      chart.timeScale().fitContent();
    },
  };
}

async function markChart(parent) {
  const made = await makeChart(parent, { label: "Mark price", height: 300 });
  if (!made) return null;
  const { chart, lib, box } = made;
  const candles = chart.addSeries(lib.CandlestickSeries, {
    upColor: "#05603a",
    downColor: "#b42318",
    borderVisible: false,
    wickUpColor: "#05603a",
    wickDownColor: "#b42318",
  });
  return {
    box,
    chart,
    draw(bars, w, barMs) {
      const points = bars.map((b) => ({ time: chartTime(b.ts), open: b.open, high: b.high, low: b.low, close: b.close }));
      candles.setData(withGaps(points, w, barMs));
      chart.timeScale().fitContent();
    },
  };
}

// -- the page --------------------------------------------------------------------------------

startPage({
  title: "Funding",
  stylesheet: true,
  async render(main) {
    const rates = await apiGet("/api/rates").catch((err) => err);
    if (rates instanceof Error) {
      main.append(h("p", { class: "error", role: "alert" }, `Could not load the symbols: ${rates.message}`));
      return;
    }
    const symbols = rates.rates.map((r) => r.symbol);
    if (symbols.length === 0) {
      main.append(empty("No symbol is configured: add some to [collect] symbols in the settings."));
      return;
    }
    const choice = choiceFromAddress(symbols);
    let latestRates = new Map(rates.rates.map((r) => [r.symbol, r]));
    let stats = null;

    // The choice: symbol, bar interval, range.
    const rangeNote = h("p", { id: "range-note", class: "note", role: "status" });
    const toolbar = h(
      "div",
      { class: "toolbar", role: "group", "aria-label": "What to show" },
      picker("Symbol", "pick-symbol", symbols, choice.symbol, (v) => change({ symbol: v })),
      picker("Bar interval", "pick-interval", INTERVALS.map(([k]) => k), choice.interval, (v) => change({ interval: v })),
      picker("Range", "pick-range", RANGES.map(([k, text]) => [k, text]), choice.range, (v) => change({ range: v })),
    );

    // The symbol now.
    const [nowSection, nowBody] = panel("Now", { id: "funding-now", wide: true });
    const nowStats = h("div", { class: "stats" });
    nowBody.append(nowStats);

    // Charts.
    const [rateSection, rateBody] = panel("Funding rate", { id: "funding-rate", wide: true });
    const rateCaption = h("p", { id: "funding-bars", class: "note" });
    const rateEmpty = h("div");
    const [markSection, markBody] = panel("Mark price", { id: "mark-price", wide: true });
    const markCaption = h("p", { id: "mark-bars", class: "note" });
    const markEmpty = h("div");

    // Settlements (the last 7 days, whatever the range) and tables.
    const [settledSection, settledBody] = panel("Settled fundings, last 7 days", { id: "settled", wide: true });
    const settledTable = h("div", { id: "settled-table" });
    const [samplesSection, samplesBody] = panel("Latest premiumIndex samples", { id: "samples", wide: true });
    const [statsSection, statsBody] = panel("Statistics per symbol", { id: "stats", wide: true });

    main.append(toolbar, rangeNote, nowSection, rateSection, markSection, settledSection, samplesSection, statsSection);
    const [rateChart, priceChart, historyChart] = await Promise.all([
      fundingChart(rateBody),
      markChart(markBody),
      settledChart(settledBody),
    ]);
    rateBody.append(rateCaption, rateEmpty);
    markBody.append(markCaption, markEmpty);
    settledBody.append(settledTable);

    function drawNow() {
      const rate = latestRates.get(choice.symbol);
      const week = stats && stats.week.get(choice.symbol);
      const ytd = stats && stats.ytd.get(choice.symbol);
      const hasRate = rate && rate.ts !== null;
      fill(
        nowStats,
        stat("Mark price", hasRate ? `${price(rate.mark_price)} USDT` : "—", { key: "mark" }),
        stat("Index price", hasRate ? `${price(rate.index_price)} USDT` : "—", { key: "index" }),
        stat("Funding now", hasRate ? fundingRate(rate.funding_rate) : "—", { key: "funding", tone: hasRate ? tone(rate.funding_rate) : "" }),
        stat("Annualised", hasRate ? annualRate(rate.annualised_rate) : "—", { key: "annualised", tone: hasRate ? tone(rate.annualised_rate) : "" }),
        stat("Next funding", rate && rate.next_funding_time ? timeEl(rate.next_funding_time) : "—", { key: "next" }),
        stat("Funding interval", rate ? `${number(rate.funding_interval_hours, 0)} h` : "—", { key: "interval" }),
        stat("7-day mean, annualised", week && week.samples ? annualRate(week.annualised) : "—", { key: "week", tone: week ? tone(week.annualised) : "" }),
        stat("Year to date, annualised", ytd && ytd.samples ? annualRate(ytd.annualised) : "—", { key: "ytd", tone: ytd ? tone(ytd.annualised) : "" }),
      );
    }

    // Everything that depends on the choice reloads when it changes; a load that finishes
    // after another change is dropped (`generation`), so an old answer never overwrites a
    // newer one.
    let generation = 0;
    let stops = [];

    async function loadCharts(gen) {
      const w = klineWindow(choice, Date.now());
      const query = { symbol: choice.symbol, interval: choice.interval, from: w.from, to: w.to };
      const [funding, mark, history] = await Promise.all([
        apiGet("/api/kline", { ...query, series: "funding_rate" }),
        apiGet("/api/kline", { ...query, series: "mark_price" }),
        apiGet("/api/history", { symbol: choice.symbol }),
      ]);
      if (gen !== generation) return;
      fill(
        rangeNote,
        w.cut
          ? `${choice.interval} bars cover at most ${spanText(w.span)} (${count(MAX_BARS)} bars): showing the last ${spanText(w.span)} of ${rangeText.get(choice.range)}.`
          : `${rangeText.get(choice.range)} in ${choice.interval} bars.`,
      );
      const barMs = intervalMs.get(choice.interval);
      const noSamples = `No premiumIndex samples for ${choice.symbol} in this range — the collector stores one every few seconds while it runs.`;
      const drawn = [
        [rateChart, funding.bars, rateCaption, rateEmpty, "in % per funding interval (the close of each bar)"],
        [priceChart, mark.bars, markCaption, markEmpty, "USDT"],
      ];
      for (const [chart, bars, caption, emptyBox, unit] of drawn) {
        if (chart) {
          chart.draw(bars, w, barMs);
          chart.box.hidden = bars.length === 0;
          chart.box.dataset.bars = String(bars.length);
        }
        fill(caption, bars.length ? `${count(bars.length)} bars of ${choice.interval}, ${unit}.` : "");
        fill(emptyBox, bars.length ? null : empty(noSamples));
      }
      if (historyChart) {
        historyChart.draw(history.rows);
        historyChart.box.hidden = history.rows.length === 0;
        historyChart.box.dataset.settled = String(history.rows.length);
      }
      drawSettled(history.rows);
    }

    function drawSettled(rows) {
      const rate = latestRates.get(choice.symbol);
      const hours = rate ? rate.funding_interval_hours : 8;
      const yearly = (x) => x * (24 / hours) * 365;
      const columns = [
        { label: "Settled", value: (s) => timeEl(s.ts) },
        { label: "Rate", num: true, key: "rate", value: (s) => fundingRate(s.funding_rate), tone: (s) => tone(s.funding_rate) },
        { label: "Annualised", num: true, key: "annualised", value: (s) => annualRate(yearly(s.funding_rate)), tone: (s) => tone(s.funding_rate) },
        { label: "Mark price", num: true, key: "mark", value: (s) => (s.mark_price === null ? "—" : price(s.mark_price)) },
      ];
      fill(
        settledTable,
        table(columns, [...rows].reverse(), { label: `Settled fundings of ${choice.symbol}`,
          emptyText: `No settled funding for ${choice.symbol} in the last 7 days — settlements are read from the exchange every hour while collection runs.`,
          rowData: (s) => ({ ts: String(s.ts) }),
        }),
        rows.length ? h("p", { class: "note" }, `Annualised at the current funding interval (${number(hours, 0)} h).`) : null,
      );
    }

    async function loadSamples(gen) {
      const to = Date.now();
      const reply = await apiGet("/api/snapshots", { symbol: choice.symbol, from: to - SAMPLES_SPAN_MS, to, limit: 5000 });
      if (gen !== generation) return;
      const rows = reply.rows.slice(-SAMPLES_SHOWN).reverse();
      const premium = (s) => (s.index_price ? s.mark_price / s.index_price - 1 : null);
      const columns = [
        { label: "Time", value: (s) => timeEl(s.ts) },
        { label: "Mark", num: true, key: "mark", value: (s) => price(s.mark_price) },
        { label: "Index", num: true, value: (s) => price(s.index_price) },
        { label: "Premium", num: true, key: "premium", value: (s) => percent(premium(s), 4), tone: (s) => tone(premium(s)) },
        { label: "Funding", num: true, key: "funding", value: (s) => fundingRate(s.funding_rate), tone: (s) => tone(s.funding_rate) },
        { label: "Est. settle", num: true, value: (s) => price(s.estimated_settle_price) },
        { label: "Interest", num: true, value: (s) => percent(s.interest_rate, 4) },
      ];
      fill(
        samplesBody,
        table(columns, rows, { label: `Latest premiumIndex samples of ${choice.symbol}`,
          emptyText: `No sample of ${choice.symbol} in the last 5 minutes — the collector stores one every few seconds while it runs.`,
          rowData: (s) => ({ ts: String(s.ts) }),
        }),
      );
    }

    function drawStats() {
      const rows = symbols.map((symbol) => ({ symbol, week: stats.week.get(symbol), ytd: stats.ytd.get(symbol) }));
      const some = (s) => Boolean(s && s.samples);
      const columns = [
        { label: "Symbol", value: (r) => r.symbol },
        { label: "7 d settled", num: true, value: (r) => count(r.week ? r.week.samples : 0) },
        { label: "7 d mean", num: true, key: "week-mean", value: (r) => (some(r.week) ? fundingRate(r.week.mean) : "—"), tone: (r) => (some(r.week) ? tone(r.week.mean) : "") },
        { label: "7 d min", num: true, key: "week-min", value: (r) => (some(r.week) ? fundingRate(r.week.min) : "—") },
        { label: "7 d max", num: true, key: "week-max", value: (r) => (some(r.week) ? fundingRate(r.week.max) : "—") },
        { label: "7 d annualised", num: true, key: "week-annualised", value: (r) => (some(r.week) ? annualRate(r.week.annualised) : "—"), tone: (r) => (some(r.week) ? tone(r.week.annualised) : "") },
        { label: `${stats.year} settled`, num: true, value: (r) => count(r.ytd ? r.ytd.samples : 0) },
        { label: `${stats.year} mean`, num: true, key: "ytd-mean", value: (r) => (some(r.ytd) ? fundingRate(r.ytd.mean) : "—") },
        { label: `${stats.year} cumulative`, num: true, key: "ytd-cumulative", value: (r) => (some(r.ytd) ? fundingRate(r.ytd.cumulative) : "—"), tone: (r) => (some(r.ytd) ? tone(r.ytd.cumulative) : "") },
        { label: `${stats.year} annualised`, num: true, key: "ytd-annualised", value: (r) => (some(r.ytd) ? annualRate(r.ytd.annualised) : "—"), tone: (r) => (some(r.ytd) ? tone(r.ytd.annualised) : "") },
      ];
      const anything = rows.some((r) => some(r.week) || some(r.ytd));
      fill(
        statsBody,
        anything
          ? table(columns, rows, { label: "Funding statistics per symbol",
              rowData: (r) => ({ symbol: r.symbol, selected: r.symbol === choice.symbol ? "true" : "false" }),
            })
          : empty("No settled funding yet — settlements are read from the exchange every hour while collection runs."),
        anything ? h("p", { class: "note" }, "Means of settled rates per funding interval; annualised: mean × settlements per day × 365; cumulative: their sum this year.") : null,
      );
      for (const tr of statsBody.querySelectorAll('tbody tr[data-selected="true"]')) tr.classList.add("selected");
    }

    /** (Re)start the loads that depend on the choice; resolves when each has had a first round. */
    function start() {
      for (const stop of stops) stop();
      generation += 1;
      const gen = generation;
      const parts = [
        keepFresh(rateBody, () => loadCharts(gen), CHARTS_EVERY_MS, { replace: false }),
        keepFresh(samplesBody, () => loadSamples(gen), SAMPLES_EVERY_MS),
      ];
      stops = parts.map((p) => p.stop);
      drawNow();
      if (stats) drawStats();
      return Promise.all(parts.map((p) => p.first));
    }

    /** A picker changed: reload what depends on it; body[data-view] says when it is drawn. */
    function change(update) {
      Object.assign(choice, update);
      keepInAddress(choice);
      document.body.dataset.view = "loading";
      const gen = generation + 1;
      start().then(() => {
        if (gen === generation) document.body.dataset.view = "ready";
      });
    }

    const always = [
      keepFresh(nowBody, async () => {
        const reply = await apiGet("/api/rates");
        latestRates = new Map(reply.rates.map((r) => [r.symbol, r]));
        drawNow();
      }, RATES_EVERY_MS, { replace: false }),
      keepFresh(statsBody, async () => {
        stats = await loadFundingStats();
        drawNow();
        drawStats();
      }, STATS_EVERY_MS),
    ];
    await Promise.all([start(), ...always.map((p) => p.first)]);
    document.body.dataset.view = "ready";
  },
});
