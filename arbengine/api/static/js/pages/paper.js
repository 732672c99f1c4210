// The Paper page: one strategy's paper trading. Its equity curve in R, its summary, every trade
// (entry, exits, R, fees, funding, exit reason), and for the trade chosen the breakdown of the
// signal that opened it, with a link to that evaluation on the Signals page.
//
// The URL holds the view (?strategy=&symbol=&trade=), so a link opens the same one.
"use strict";

import { apiGet } from "../api.js";
import { directionWord, loadEvaluation, loadStrategies, renderBreakdown, signalsLink } from "../breakdown.js";
import { chartTime, makeChart } from "../charts.js";
import { empty, failed, fill, h, loading, panel, picker, stat, table, timeEl } from "../dom.js";
import { DASH, number, percent, price, r, tone, usd } from "../format.js";
import { startPage } from "../layout.js";
import { poll } from "../poll.js";

const EVERY_MS = 30000;
const TRADES_LIMIT = 1000;
const ALL = "";

const css = (name, fallback) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

function readUrl() {
  const q = new URLSearchParams(location.search);
  const trade = Number.parseInt(q.get("trade") || "", 10);
  return { strategy: q.get("strategy") || "", symbol: q.get("symbol") || ALL, trade: Number.isFinite(trade) ? trade : null };
}

function writeUrl(state) {
  const q = new URLSearchParams();
  if (state.strategy) q.set("strategy", state.strategy);
  if (state.symbol) q.set("symbol", state.symbol);
  if (state.trade !== null) q.set("trade", String(state.trade));
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

/** The fills of a trade, from the stored `exits` (the paper trader's shape). */
function fillsOf(trade) {
  const exits = trade.exits;
  if (Array.isArray(exits)) return exits;
  return exits && Array.isArray(exits.fills) ? exits.fills : [];
}

function exitsText(trade) {
  const fills = fillsOf(trade).filter((f) => f && typeof f === "object" && f.price !== undefined);
  if (fills.length === 0) return DASH;
  return fills.map((f) => `${f.reason} ${percent(f.fraction, 0)} @ ${price(f.price)}`).join(" · ");
}

function summaryStats(s, trades, truncated) {
  const fees = trades.reduce((sum, t) => sum + t.fees, 0);
  const funding = trades.reduce((sum, t) => sum + t.funding, 0);
  const avg = s.closed ? s.total_r / s.closed : null;
  const part = truncated ? ` (newest ${trades.length})` : "";
  return h(
    "div",
    { class: "stats", id: "paper-stats" },
    stat("Trades", number(s.trades, 0), { key: "trades" }),
    stat("Open", number(s.open, 0), { key: "open" }),
    stat("Closed", number(s.closed, 0), { key: "closed" }),
    stat("Wins / losses", `${number(s.wins, 0)} / ${number(s.losses, 0)}`, { key: "wins-losses" }),
    stat("Win rate", s.win_rate === null ? DASH : percent(s.win_rate, 1), { key: "win-rate" }),
    stat("Total", r(s.total_r), { key: "total-r", tone: tone(s.total_r) }),
    stat("Total in USD", usd(s.total_usd, { signed: true }), { key: "total-usd", tone: tone(s.total_usd) }),
    stat("Mean per closed trade", avg === null ? DASH : r(avg), { key: "mean-r", tone: tone(avg) }),
    stat(`Fees${part}`, usd(fees), { key: "fees" }),
    stat(`Funding${part}`, usd(funding, { signed: true }), { key: "funding", tone: tone(funding) }),
  );
}

/** The equity curve's points: 0 before the first close, then cumulative R at each close (one
 * per second on the axis: the last of closes in the same second). */
function equityData(points, trades) {
  if (points.length === 0) return [];
  const firstEntry = Math.min(...trades.filter((t) => t.status === "closed").map((t) => t.entry_tick), points[0].ts - 1000);
  const bySecond = new Map([[chartTime(firstEntry), 0]]);
  for (const p of points) bySecond.set(chartTime(p.ts), p.r);
  return [...bySecond.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
}

async function openView(content, state, definition, onState) {
  let selected = state.trade;
  let trades = [];
  let picking = 0;

  const [summaryPanel, summaryBody] = panel("Summary", { id: "summary-panel", wide: true });
  const [equityPanel, equityBody] = panel("Equity curve (R)", { id: "equity-panel", wide: true });
  const [tradesPanel, tradesBody] = panel("Trades", { id: "trades-panel", wide: true });
  const [signalPanel, signalBody] = panel("Entry signal", { id: "entry-signal-panel", wide: true });
  const status = h("p", { class: "note", id: "paper-status", role: "status" });
  fill(content, status, summaryPanel, equityPanel, tradesPanel, signalPanel);
  fill(signalBody, empty("Choose a trade to see the evaluation that opened it."));

  const chart = await makeChart(equityBody, { label: `Equity of ${state.strategy}'s paper trades in R, by close time`, height: 260 });
  let curve = null;
  if (chart) {
    chart.box.id = "equity-chart";
    curve = chart.chart.addSeries(chart.lib.BaselineSeries, {
      baseValue: { type: "price", price: 0 },
      topLineColor: css("--pos", "#05603a"),
      bottomLineColor: css("--neg", "#b42318"),
      topFillColor1: "rgba(5, 96, 58, 0.25)",
      topFillColor2: "rgba(5, 96, 58, 0.04)",
      bottomFillColor1: "rgba(180, 35, 24, 0.04)",
      bottomFillColor2: "rgba(180, 35, 24, 0.25)",
      lineWidth: 2,
      priceFormat: { type: "custom", formatter: (x) => `${x.toFixed(2)} R`, minMove: 0.01 },
    });
  }
  const curveNote = h("p", { class: "empty", id: "equity-empty", hidden: true }, "No closed trade yet — the curve starts at the first close.");
  equityBody.append(curveNote);

  async function showSignal(trade) {
    const mine = ++picking;
    fill(signalBody, loading());
    const link = h(
      "a",
      { href: signalsLink(trade.strategy, trade.symbol, trade.entry_tick), id: "entry-signal-link" },
      "Open this evaluation on the Signals page",
    );
    try {
      const e = await loadEvaluation(trade.strategy, trade.symbol, trade.entry_tick);
      if (mine !== picking) return;
      const intro = h(
        "p",
        { class: "note" },
        `Trade #${trade.id}: ${directionWord(trade.direction).toLowerCase()} ${trade.symbol}, entered at `,
        timeEl(trade.entry_tick),
        ". ",
        link,
      );
      if (!e || e.tick !== trade.entry_tick) {
        fill(signalBody, intro, empty("The evaluation of this trade's entry tick is not stored."));
        return;
      }
      fill(signalBody, intro, renderBreakdown(e, definition));
    } catch (err) {
      if (mine === picking) fill(signalBody, failed(err), link);
    }
  }

  function pick(trade) {
    selected = trade.id;
    onState({ ...state, trade: trade.id });
    markSelected();
    return showSignal(trade);
  }

  function markSelected() {
    for (const tr of tradesBody.querySelectorAll("tbody tr")) {
      const on = Number(tr.dataset.tradeId) === selected;
      tr.classList.toggle("selected", on);
      if (on) tr.setAttribute("aria-current", "true");
      else tr.removeAttribute("aria-current");
    }
  }

  function drawTrades(truncated) {
    const t = table(
      [
        { label: "Symbol", value: (x) => x.symbol },
        { label: "Side", value: (x) => directionWord(x.direction), key: "side" },
        { label: "Entry", value: (x) => timeEl(x.entry_tick), key: "entry-time" },
        { label: "Entry price", value: (x) => price(x.entry_price), num: true, key: "entry-price" },
        { label: "Exits", value: (x) => exitsText(x), key: "exits" },
        { label: "Exit reason", value: (x) => x.exit_reason || (x.status === "open" ? "open" : DASH), key: "exit-reason" },
        { label: "Closed", value: (x) => (x.closed_at === null ? DASH : timeEl(x.closed_at)), key: "closed" },
        {
          label: "Result",
          value: (x) => (x.result_r === null ? DASH : h("span", { title: usd(x.result_usd, { signed: true }) }, r(x.result_r))),
          num: true,
          key: "r",
          tone: (x) => tone(x.result_r),
        },
        { label: "Fees", value: (x) => usd(x.fees), num: true, key: "fees" },
        { label: "Funding", value: (x) => usd(x.funding, { signed: true }), num: true, key: "funding", tone: (x) => tone(x.funding) },
        {
          label: "Signal",
          value: (x) => h("a", { href: signalsLink(x.strategy, x.symbol, x.entry_tick), "aria-label": `Entry signal of trade ${x.id} on the Signals page` }, "open"),
        },
      ],
      trades,
      {
        emptyText: `No paper trades of ${state.strategy}${state.symbol ? ` on ${state.symbol}` : ""} yet — a trade opens when a signal fires.`,
        rowData: (x) => ({ tradeId: String(x.id), status: x.status }),
        label: "Trades",
      },
    );
    for (const tr of t.querySelectorAll("tbody tr")) {
      const trade = trades.find((x) => x.id === Number(tr.dataset.tradeId));
      tr.tabIndex = 0;
      tr.addEventListener("click", (ev) => {
        if (!(ev.target instanceof HTMLAnchorElement)) pick(trade);
      });
      tr.addEventListener("keydown", (ev) => {
        if (ev.target === tr && (ev.key === "Enter" || ev.key === " ")) {
          ev.preventDefault();
          pick(trade);
        }
      });
    }
    const count = h(
      "p",
      { class: "note", id: "trades-count" },
      `${trades.length} trade${trades.length === 1 ? "" : "s"}${truncated ? " (the newest)" : ""}, newest entry first; choose one for its entry signal.`,
    );
    fill(tradesBody, trades.length ? count : null, t);
    if (trades.length === 0) t.id = "paper-empty";
    markSelected();
  }

  async function load() {
    const params = { strategy: state.strategy, symbol: state.symbol || undefined };
    const [summary, list] = await Promise.all([
      apiGet("/api/paper/summary", params),
      apiGet("/api/paper/trades", { ...params, limit: TRADES_LIMIT }),
    ]);
    trades = list.rows;
    const s = summary.strategies.find((x) => x.strategy === state.strategy) || {
      trades: 0, open: 0, closed: 0, wins: 0, losses: 0, win_rate: null, total_r: 0, total_usd: 0, equity: [],
    };
    fill(summaryBody, summaryStats(s, trades, list.truncated));
    const data = equityData(s.equity, trades);
    if (curve) {
      curve.setData(data);
      chart.box.dataset.points = String(s.equity.length);
      chart.chart.timeScale().fitContent();
    }
    curveNote.hidden = data.length > 0;
    drawTrades(list.truncated);
    fill(status);
  }

  await load();
  if (selected !== null) {
    const trade = trades.find((x) => x.id === selected);
    if (trade) await showSignal(trade);
  }
  // Trades fill and close as the market moves: refreshed from then on (the first load is above).
  const stopPolling = poll(load, EVERY_MS, {
    immediate: false,
    onError: (err) => fill(status, failed(err)),
  });
  return () => {
    stopPolling();
    chart?.chart.remove();
  };
}

startPage({
  title: "Paper",
  stylesheet: true,
  async render(main) {
    const toolbar = h("div", { class: "toolbar", id: "paper-toolbar" });
    const content = h("div", { id: "paper-view" }, loading());
    main.append(toolbar, content);
    let strategies;
    let overall;
    try {
      [strategies, overall] = await Promise.all([loadStrategies(), apiGet("/api/paper/summary")]);
    } catch (err) {
      fill(content, failed(err));
      return;
    }
    const names = [...new Set([...overall.strategies.map((s) => s.strategy), ...strategies.keys()])].sort();
    if (names.length === 0) {
      fill(content, empty("No strategies are loaded and none has paper-traded — the engine runs the strategy files of [engine] strategies_dir."));
      return;
    }
    const traded = overall.strategies.filter((s) => s.trades > 0).map((s) => s.strategy);
    let state = readUrl();
    let stop = () => {};

    const symbolsOf = (name) => [...new Set(strategies.get(name)?.symbols || [])].sort();

    function settle(next) {
      const strategy = names.includes(next.strategy) ? next.strategy : traded[0] || names[0];
      const symbol = symbolsOf(strategy).includes(next.symbol) ? next.symbol : ALL;
      return { strategy, symbol, trade: strategy === next.strategy && symbol === next.symbol ? next.trade : null };
    }

    function drawToolbar() {
      const symbols = symbolsOf(state.strategy);
      fill(
        toolbar,
        picker("Strategy", "strategy-picker", names, state.strategy, (value) => show({ ...state, strategy: value, trade: null })),
        picker("Symbol", "symbol-picker", [[ALL, "All symbols"], ...symbols], state.symbol, (value) => show({ ...state, symbol: value, trade: null })),
      );
    }

    async function show(next) {
      stop();
      state = settle(next);
      writeUrl(state);
      drawToolbar();
      fill(content, loading());
      try {
        stop = await openView(content, state, strategies.get(state.strategy) || null, (s) => {
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
