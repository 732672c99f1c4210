// The Signals page: one strategy on one symbol. Its score at every evaluated tick against the
// threshold, the fired signals on the price, a table of the evaluations, and for the one chosen
// (a table row, a point on either chart, or ?at= in the link) the full breakdown.
//
// The URL holds the view (?strategy=&symbol=&range=&at=), so a link opens the same one: the
// Paper page links a trade's entry signal here. Without ?at= the view follows the engine: it
// shows the latest evaluation and moves on with each new tick; choosing one stops that.
"use strict";

import { apiGet } from "../api.js";
import { directionWord, loadEvaluation, loadStrategies, renderBreakdown } from "../breakdown.js";
import { chartTime, makeChart } from "../charts.js";
import { empty, failed, fill, h, loading, panel, picker, table, timeEl } from "../dom.js";
import { DASH, duration, number, percent } from "../format.js";
import { startPage } from "../layout.js";
import { poll } from "../poll.js";

const HOUR = 3600000;
const RANGES = [
  ["1h", "Last hour", HOUR],
  ["6h", "Last 6 hours", 6 * HOUR],
  ["24h", "Last 24 hours", 24 * HOUR],
];
const TABLE_ROWS = 100;
const EVALUATIONS_LIMIT = 20000;

const css = (name, fallback) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

function readUrl() {
  const q = new URLSearchParams(location.search);
  const at = Number.parseInt(q.get("at") || "", 10);
  const range = RANGES.some(([key]) => key === q.get("range")) ? q.get("range") : "6h";
  return { strategy: q.get("strategy") || "", symbol: q.get("symbol") || "", range, at: Number.isFinite(at) ? at : null };
}

function writeUrl(state) {
  const q = new URLSearchParams();
  if (state.strategy) q.set("strategy", state.strategy);
  if (state.symbol) q.set("symbol", state.symbol);
  if (state.range !== "6h") q.set("range", state.range);
  if (state.at !== null) q.set("at", String(state.at));
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

const spanOf = (range) => RANGES.find(([key]) => key === range)[2];
const klineInterval = (span) => (span <= 6 * HOUR ? ["1m", 60000] : ["5m", 300000]);
const reasonWords = (row) => (row.fired ? "fired" : (row.reason || DASH).replaceAll("_", " "));

/** What can be chosen: the strategies running now, and any with stored evaluations. */
function choices(strategies, latest) {
  const names = new Set(strategies.keys());
  for (const row of latest.rows) names.add(row.strategy);
  const symbolsOf = (name) => {
    const symbols = new Set(strategies.get(name)?.symbols || []);
    for (const row of latest.rows) if (row.strategy === name) symbols.add(row.symbol);
    return [...symbols].sort();
  };
  return { names: [...names].sort(), symbolsOf };
}

function noEvaluations(state, latest, definition) {
  const every = definition ? duration(definition.tick_ms / 1000) : "tick";
  const waiting = latest.waiting.find((w) => w.strategy === state.strategy && w.symbol === state.symbol);
  return h(
    "div",
    { id: "signals-empty" },
    empty(`No evaluations of ${state.strategy} on ${state.symbol} yet — the engine evaluates every ${every} once the tape is warm.`),
    waiting ? h("p", { class: "note" }, `Waiting since `, timeEl(waiting.since * 1000), `: ${waiting.reason}.`) : null,
  );
}

/** One strategy and symbol on screen; returns a function that stops its polling. */
async function openView(content, state, definition, latest, onState) {
  const span = spanOf(state.range);
  const [interval, intervalMs] = klineInterval(span);
  let follow = state.at === null;
  let selected = state.at;
  let rows = []; // oldest first
  let window = null;
  let firedOnly = false;
  let selecting = 0;

  // -- the frame of the view ----------------------------------------------------------------
  const facts = h("p", { class: "note", id: "strategy-facts" });
  if (definition) {
    fill(
      facts,
      `Threshold ${number(definition.threshold, 0)} · minimum coverage ${percent(definition.min_coverage / 100, 0)} · `,
      `a tick every ${duration(definition.tick_ms / 1000)} · version `,
      h("code", { title: definition.hash }, definition.hash.slice(0, 12)),
    );
  } else {
    fill(facts, `${state.strategy} is not among the strategies the engine runs now; its stored evaluations are shown.`);
  }
  const status = h("p", { class: "note", id: "signals-status", role: "status" });
  const [scorePanel, scoreBody] = panel("Score", { id: "score-panel", wide: true });
  const [pricePanel, priceBody] = panel("Price and fired signals", { id: "price-panel", wide: true });
  const [tablePanel, tableBody] = panel("Evaluations", { id: "evaluations-panel" });
  const [breakdownPanel, breakdownBody] = panel("Breakdown", { id: "breakdown-panel" });
  const onlyFired = h("input", {
    type: "checkbox",
    id: "fired-only",
    on: {
      change: () => {
        firedOnly = onlyFired.checked;
        drawTable();
      },
    },
  });
  const tableHolder = h("div", { id: "evaluations-table" });
  fill(tableBody, h("label", { class: "check", for: "fired-only" }, onlyFired, " Fired signals only"), tableHolder);
  fill(content, facts, status, scorePanel, pricePanel, h("div", { class: "signals-pair" }, tablePanel, breakdownPanel));

  // -- charts -------------------------------------------------------------------------------
  // A narrower window (a phone turned, a panel resized) keeps the same hours in view.
  const timeScale = { timeVisible: true, secondsVisible: false, lockVisibleTimeRangeOnResize: true };
  const scoreChart = await makeChart(scoreBody, {
    label: `Score of ${state.strategy} on ${state.symbol} per tick, with the threshold`,
    height: 240,
    options: { timeScale },
  });
  const priceChart = await makeChart(priceBody, {
    label: `Mark price of ${state.symbol} with the signals of ${state.strategy}`,
    height: 300,
    options: { timeScale },
  });
  let scoreSeries = null;
  let scoreMarkers = null;
  let candles = null;
  let priceMarkers = null;
  if (scoreChart) {
    scoreChart.box.id = "score-chart";
    scoreSeries = scoreChart.chart.addSeries(scoreChart.lib.LineSeries, {
      color: css("--accent", "#1849a9"),
      lineWidth: 2,
      priceLineVisible: false,
      autoscaleInfoProvider: () => ({ priceRange: { minValue: 0, maxValue: 100 } }),
      priceFormat: { type: "price", precision: 1, minMove: 0.1 },
    });
    if (definition) {
      scoreSeries.createPriceLine({
        price: definition.threshold,
        color: css("--neg", "#b42318"),
        lineWidth: 1,
        lineStyle: 2,
        axisLabelVisible: true,
        title: "threshold",
      });
    }
    scoreMarkers = scoreChart.lib.createSeriesMarkers(scoreSeries, []);
    scoreChart.chart.subscribeClick((param) => clicked(param.time));
  }
  if (priceChart) {
    priceChart.box.id = "price-chart";
    candles = priceChart.chart.addSeries(priceChart.lib.CandlestickSeries, {
      upColor: css("--pos", "#05603a"),
      borderUpColor: css("--pos", "#05603a"),
      wickUpColor: css("--pos", "#05603a"),
      downColor: css("--neg", "#b42318"),
      borderDownColor: css("--neg", "#b42318"),
      wickDownColor: css("--neg", "#b42318"),
    });
    priceMarkers = priceChart.lib.createSeriesMarkers(candles, []);
    priceChart.chart.subscribeClick((param) => clicked(param.time));
  }

  /** A click on a chart: the evaluation nearest the time under the pointer. */
  function clicked(time) {
    if (time === undefined || rows.length === 0) return;
    const ms = time * 1000 + new Date(time * 1000).getTimezoneOffset() * 60000;
    let best = rows[0];
    for (const row of rows) if (Math.abs(row.tick - ms) < Math.abs(best.tick - ms)) best = row;
    select(best.tick);
  }

  function markers() {
    const fired = rows.filter((r) => r.fired);
    const pos = css("--pos", "#05603a");
    const neg = css("--neg", "#b42318");
    if (scoreMarkers) {
      const marks = fired.map((r) => ({
        time: chartTime(r.tick),
        position: r.direction === 1 ? "belowBar" : "aboveBar",
        shape: r.direction === 1 ? "arrowUp" : "arrowDown",
        color: r.direction === 1 ? pos : neg,
        text: directionWord(r.direction),
      }));
      if (selected !== null && rows.some((r) => r.tick === selected)) {
        marks.push({ time: chartTime(selected), position: "inBar", shape: "circle", color: css("--fg", "#1d2330"), size: 1 });
        marks.sort((a, b) => a.time - b.time);
      }
      scoreMarkers.setMarkers(marks);
    }
    if (priceMarkers) {
      priceMarkers.setMarkers(
        fired.map((r) => ({
          time: chartTime(Math.floor(r.tick / intervalMs) * intervalMs),
          position: r.direction === 1 ? "belowBar" : "aboveBar",
          shape: r.direction === 1 ? "arrowUp" : "arrowDown",
          color: r.direction === 1 ? pos : neg,
          text: `${directionWord(r.direction)} ${number(r.score, 1)}`,
        })),
      );
    }
  }

  function drawTable() {
    const newest = [...rows].reverse();
    const shown = (firedOnly ? newest.filter((r) => r.fired) : newest).slice(0, TABLE_ROWS);
    const t = table(
      [
        { label: "Tick", value: (r) => timeEl(r.tick) },
        { label: "Side", value: (r) => (r.direction ? directionWord(r.direction) : DASH) },
        { label: "Score", value: (r) => (r.score === null ? DASH : number(r.score, 2)), num: true, key: "score" },
        { label: "Coverage", value: (r) => (r.coverage === null ? DASH : percent(r.coverage / 100, 1)), num: true },
        { label: "Result", value: (r) => (r.fired ? h("span", { class: "badge ok" }, "fired") : reasonWords(r)), key: "result" },
      ],
      shown,
      {
        emptyText: firedOnly ? "No signal fired in this range." : "No evaluations in this range.",
        rowData: (r) => ({ tick: String(r.tick), fired: r.fired ? "true" : "false" }),
      },
    );
    for (const tr of t.querySelectorAll("tbody tr")) {
      const tick = Number(tr.dataset.tick);
      tr.tabIndex = 0;
      tr.addEventListener("click", () => select(tick));
      tr.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          select(tick);
        }
      });
    }
    const total = firedOnly ? newest.filter((r) => r.fired).length : newest.length;
    const count = h("p", { class: "note", id: "evaluations-count" }, `${shown.length} of ${total}, newest first; choose one for its breakdown.`);
    fill(tableHolder, shown.length ? count : null, t);
    markSelected();
  }

  function markSelected() {
    for (const tr of tableHolder.querySelectorAll("tbody tr")) {
      const on = Number(tr.dataset.tick) === selected;
      tr.classList.toggle("selected", on);
      if (on) tr.setAttribute("aria-current", "true");
      else tr.removeAttribute("aria-current");
    }
  }

  async function showBreakdown(tick) {
    const mine = ++selecting;
    fill(breakdownBody, loading());
    try {
      const e = await loadEvaluation(state.strategy, state.symbol, tick);
      if (mine !== selecting) return;
      if (e && e.tick !== selected) {
        selected = e.tick; // ?at= between two ticks: the one before
        markSelected();
        markers();
      }
      fill(breakdownBody, e ? renderBreakdown(e, definition) : empty("No evaluation at or before this time."));
    } catch (err) {
      if (mine === selecting) fill(breakdownBody, failed(err));
    }
  }

  /** Choose one evaluation: its breakdown, marked on the chart and in the table, in the URL. */
  async function select(tick) {
    follow = false;
    selected = tick;
    onState({ ...state, at: tick });
    markers();
    markSelected();
    await showBreakdown(tick);
  }

  // -- data ---------------------------------------------------------------------------------
  async function load() {
    if (follow || window === null) {
      const anchor = follow ? await loadEvaluation(state.strategy, state.symbol, null) : null;
      if (follow && anchor === null) return false;
      const end = follow ? anchor.tick + 1 : Math.min(state.at + span / 2, Date.now()) + 1;
      window = { from: Math.max(0, end - span), to: end };
      if (follow) selected = anchor.tick;
    }
    const [list, kline] = await Promise.all([
      apiGet("/api/signals/evaluations", { strategy: state.strategy, symbol: state.symbol, from: window.from, to: window.to, limit: EVALUATIONS_LIMIT }),
      apiGet("/api/kline", { symbol: state.symbol, series: "mark_price", interval, from: window.from, to: window.to }).catch((err) => ({ failed: err })),
    ]);
    rows = list.rows.slice().reverse();
    if (scoreSeries) {
      scoreSeries.setData(rows.map((r) => (r.score === null ? { time: chartTime(r.tick) } : { time: chartTime(r.tick), value: r.score })));
    }
    if (candles) {
      if (kline.failed) {
        priceBody.querySelector(".error")?.remove();
        priceBody.append(failed(kline.failed));
      } else {
        candles.setData(kline.bars.map((b) => ({ time: chartTime(b.ts), open: b.open, high: b.high, low: b.low, close: b.close })));
        priceChart.box.dataset.bars = String(kline.bars.length);
      }
    }
    if (priceChart && !kline.failed && kline.bars.length === 0) {
      priceBody.querySelector(".empty")?.remove();
      priceBody.append(empty(`No mark prices of ${state.symbol} stored in this range.`));
    }
    markers();
    scoreChart?.chart.timeScale().fitContent();
    priceChart?.chart.timeScale().fitContent();
    fill(
      status,
      list.truncated ? `Showing the newest ${list.rows.length} evaluations of this range. ` : "",
      "From ",
      timeEl(window.from),
      " to ",
      timeEl(window.to - 1),
      follow ? " · following the engine" : "",
    );
    drawTable();
    return true;
  }

  const found = await load();
  if (!found) {
    fill(content, noEvaluations(state, latest, definition));
    return () => {};
  }
  if (selected !== null) await showBreakdown(selected);
  else fill(breakdownBody, empty("Choose an evaluation in the table or on the chart."));

  // Live: a new tick every few seconds; a view pinned to a time keeps its range.
  const every = Math.max(5000, definition ? definition.tick_ms : 15000);
  const stopPolling = poll(
    async () => {
      const before = selected;
      await load();
      if (follow && selected !== before) await showBreakdown(selected);
    },
    every,
    { immediate: false, onError: (err) => fill(status, failed(err)) },
  );
  return () => {
    stopPolling();
    scoreChart?.chart.remove();
    priceChart?.chart.remove();
  };
}

startPage({
  title: "Signals",
  stylesheet: true,
  async render(main) {
    const toolbar = h("div", { class: "toolbar", id: "signals-toolbar" });
    const content = h("div", { id: "signals-view" }, loading());
    main.append(toolbar, content);
    let strategies;
    let latest;
    try {
      [strategies, latest] = await Promise.all([loadStrategies(), apiGet("/api/signals/latest")]);
    } catch (err) {
      fill(content, failed(err));
      return;
    }
    const { names, symbolsOf } = choices(strategies, latest);
    if (names.length === 0) {
      fill(content, empty("No strategies are loaded and none has been evaluated — the engine runs the strategy files of [engine] strategies_dir."));
      return;
    }

    let state = readUrl();
    let stop = () => {};

    function settle(next) {
      const strategy = names.includes(next.strategy) ? next.strategy : names[0];
      const symbols = symbolsOf(strategy);
      const withRows = latest.rows.filter((r) => r.strategy === strategy).map((r) => r.symbol);
      const symbol = symbols.includes(next.symbol) ? next.symbol : withRows[0] || symbols[0] || "";
      return { ...next, strategy, symbol, at: strategy === next.strategy && symbol === next.symbol ? next.at : null };
    }

    function drawToolbar() {
      fill(
        toolbar,
        picker("Strategy", "strategy-picker", names, state.strategy, (value) => show({ ...state, strategy: value, at: null })),
        picker("Symbol", "symbol-picker", symbolsOf(state.strategy), state.symbol, (value) => show({ ...state, symbol: value, at: null })),
        picker("Range", "range-picker", RANGES.map(([key, label]) => [key, label]), state.range, (value) => show({ ...state, range: value })),
      );
    }

    async function show(next) {
      stop();
      state = settle(next);
      writeUrl(state);
      drawToolbar();
      fill(content, loading());
      try {
        stop = await openView(content, state, strategies.get(state.strategy) || null, latest, (s) => {
          state = s;
          writeUrl(state);
        });
      } catch (err) {
        stop = () => {};
        fill(content, failed(err));
      }
    }

    await show(state);
  },
});
