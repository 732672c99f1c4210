// The overview: what a trader checks first each day. A card per symbol (mark price, funding
// now and annualised, the countdown to the next funding, the 7-day and year-to-date means, a
// day of mark price), the latest evaluation per strategy and symbol, the open paper and live
// positions, the tape's completeness and the risk guard's state.
//
// Each part refreshes on its own (poll.js) so one slow or failing route leaves the others
// current; the countdowns tick every second from the browser's clock between refreshes.
"use strict";

import { apiGet } from "../api.js";
import { chartTime, makeChart } from "../charts.js";
import { empty, fill, h, panel, stat, table, timeEl } from "../dom.js";
import { count, countdown, number, percent, price, r, tone, usd } from "../format.js";
import { annualRate, fundingRate, loadFundingStats } from "../funding_data.js";
import { startPage } from "../layout.js";
import { keepFresh, side } from "../market_parts.js";
import { poll } from "../poll.js";

const RATES_EVERY_MS = 5000;
const STATS_EVERY_MS = 60000;
const SIGNALS_EVERY_MS = 15000;
const TRADING_EVERY_MS = 15000;
const TAPE_EVERY_MS = 60000;
const SPARK_EVERY_MS = 60000;
const SPARK_SPAN_MS = 24 * 3600 * 1000;
const SPARK_INTERVAL = "15m";
const STALE_AFTER_MS = 30000;

// -- markets: a card per symbol ---------------------------------------------------------------

/** The countdowns to the next funding, ticking every second between refreshes. */
const countdowns = new Map();

function tickCountdowns() {
  const now = Date.now();
  for (const [el, when] of countdowns) {
    if (!el.isConnected) countdowns.delete(el);
    else el.textContent = countdown(when, now);
  }
}

function markets(latestRates) {
  const [section, body] = panel("Markets", { id: "markets", wide: true });
  const grid = h("div", { class: "market-cards" });
  body.append(grid);
  const cards = new Map();
  let stats = { week: new Map(), ytd: new Map() };

  const sparks = new SparkLines();

  function card(symbol) {
    if (cards.has(symbol)) return cards.get(symbol);
    const headingId = `card-${symbol}-title`;
    const values = {
      mark: h("span"),
      funding: h("span"),
      annualised: h("span"),
      countdown: h("span", { class: "countdown" }),
      week: h("span"),
      ytd: h("span"),
    };
    const status = h("p", { class: "card-status note" });
    const spark = h("div", { class: "spark" });
    const figure = (label, key, extra) => {
      const el = stat(label, values[key], { key });
      if (extra) el.append(extra);
      return el;
    };
    const nextAt = h("span", { class: "stat-sub note" });
    const el = h(
      "article",
      { class: "card market", id: `card-${symbol}`, "aria-labelledby": headingId, data: { symbol } },
      h("h3", { id: headingId }, symbol),
      h(
        "div",
        { class: "stats" },
        figure("Mark price", "mark"),
        figure("Funding now", "funding"),
        figure("Annualised", "annualised"),
        figure("7-day mean, annualised", "week"),
        figure("Year to date, annualised", "ytd"),
        figure("Next funding in", "countdown", nextAt),
      ),
      spark,
      status,
    );
    const entry = { el, values, status, nextAt, spark };
    cards.set(symbol, entry);
    grid.append(el);
    sparks.watch(symbol, spark);
    return entry;
  }

  function drawRate(rate) {
    const c = card(rate.symbol);
    fill(c.values.mark, price(rate.mark_price), rate.mark_price === null ? null : h("span", { class: "unit" }, " USDT"));
    c.values.funding.textContent = fundingRate(rate.funding_rate);
    c.values.funding.className = tone(rate.funding_rate);
    c.values.annualised.textContent = annualRate(rate.annualised_rate);
    c.values.annualised.className = tone(rate.annualised_rate);
    const hours = number(rate.funding_interval_hours, 0);
    c.values.funding.title = `per ${hours} h funding interval`;
    if (rate.next_funding_time === null) {
      countdowns.delete(c.values.countdown);
      c.values.countdown.textContent = "—";
      fill(c.nextAt);
    } else {
      countdowns.set(c.values.countdown, rate.next_funding_time);
      fill(c.nextAt, "at ", timeEl(rate.next_funding_time));
    }
    if (rate.ts === null) {
      fill(c.status, "No premiumIndex sample yet: the collector stores one every few seconds once it runs.");
      c.status.className = "card-status note";
    } else {
      const age = Date.now() - rate.ts;
      const stale = age > STALE_AFTER_MS;
      fill(
        c.status,
        stale ? h("span", { class: "badge warn" }, `stale: ${age < 60000 ? `${Math.floor(age / 1000)} s` : `${Math.floor(age / 60000)} min`} old`) : null,
        stale ? " " : null,
        "Last sample ",
        timeEl(rate.ts),
        `; funding every ${hours} h.`,
      );
      c.status.className = "card-status note";
    }
  }

  function drawStats(symbol) {
    const c = cards.get(symbol);
    if (!c) return;
    const week = stats.week.get(symbol);
    const ytd = stats.ytd.get(symbol);
    c.values.week.textContent = week && week.samples ? annualRate(week.annualised) : "—";
    c.values.week.className = week ? tone(week.annualised) : "";
    c.values.week.title = week && week.samples ? `${week.samples} settlements, mean ${fundingRate(week.mean)}` : "no settlement in 7 days";
    c.values.ytd.textContent = ytd && ytd.samples ? annualRate(ytd.annualised) : "—";
    c.values.ytd.className = ytd ? tone(ytd.annualised) : "";
    c.values.ytd.title = ytd && ytd.samples ? `${ytd.samples} settlements, mean ${fundingRate(ytd.mean)}` : "no settlement this year";
  }

  const ratesLoaded = keepFresh(body, async () => {
    const reply = await apiGet("/api/rates");
    if (!grid.isConnected) fill(body, grid);
    for (const rate of reply.rates) drawRate(rate);
    latestRates.clear();
    for (const rate of reply.rates) latestRates.set(rate.symbol, rate);
    for (const symbol of cards.keys()) drawStats(symbol);
    tickCountdowns();
  }, RATES_EVERY_MS).first;

  const statsLoaded = ratesLoaded.then(() =>
    keepFresh(body, async () => {
      stats = await loadFundingStats();
      for (const symbol of cards.keys()) drawStats(symbol);
    }, STATS_EVERY_MS, { replace: false }).first,
  );

  setInterval(tickCountdowns, 1000);
  return { section, ratesReady: ratesLoaded, ready: Promise.all([ratesLoaded, statsLoaded]) };
}

/**
 * A day of mark price per card, drawn when the card comes into view (a deployment following
 * hundreds of symbols asks only for the ones on screen) and refreshed while the tab is open.
 * The first one drawn marks `first-chart` for the first-load measurement.
 */
class SparkLines {
  constructor() {
    this.boxes = new Map();
    this.observer =
      "IntersectionObserver" in window
        ? new IntersectionObserver((entries) => this.seen(entries), { rootMargin: "200px" })
        : null;
  }

  watch(symbol, box) {
    this.boxes.set(box, symbol);
    if (this.observer) this.observer.observe(box);
    else this.start(box);
  }

  seen(entries) {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      this.observer.unobserve(entry.target);
      this.start(entry.target);
    }
  }

  async start(box) {
    const symbol = this.boxes.get(box);
    const made = await makeChart(box, {
      label: `${symbol} mark price, last 24 hours`,
      height: 72,
      options: {
        handleScroll: false,
        handleScale: false,
        crosshair: { vertLine: { visible: false }, horzLine: { visible: false } },
        grid: { vertLines: { visible: false }, horzLines: { visible: false } },
        rightPriceScale: { visible: false },
        leftPriceScale: { visible: false },
        timeScale: { visible: false },
      },
    });
    if (!made) return;
    const { chart, lib, box: chartBox } = made;
    const series = chart.addSeries(lib.AreaSeries, {
      lineWidth: 2,
      lineColor: "#1849a9",
      topColor: "rgba(24, 73, 169, 0.25)",
      bottomColor: "rgba(24, 73, 169, 0.02)",
      priceLineVisible: false,
      lastValueVisible: false,
    });
    const note = h("p", { class: "note spark-note" });
    box.append(note);
    poll(async () => {
      const to = Date.now();
      const reply = await apiGet("/api/kline", {
        symbol,
        series: "mark_price",
        interval: SPARK_INTERVAL,
        from: to - SPARK_SPAN_MS,
        to,
      });
      series.setData(reply.bars.map((bar) => ({ time: chartTime(bar.ts), value: bar.close })));
      chart.timeScale().fitContent();
      chartBox.hidden = reply.bars.length === 0;
      note.textContent = reply.bars.length === 0 ? "No mark price in the last 24 h." : "";
      chartBox.dataset.points = String(reply.bars.length);
      if (reply.bars.length > 0) markFirstChart();
    }, SPARK_EVERY_MS, {
      onError: (err) => {
        note.textContent = `Could not load the chart: ${err.message}`;
      },
    });
  }
}

let firstChartMarked = false;

/** `performance.mark('first-chart')` once the first chart with data has been painted. */
function markFirstChart() {
  if (firstChartMarked) return;
  firstChartMarked = true;
  requestAnimationFrame(() => performance.mark("first-chart"));
}

// -- signals ---------------------------------------------------------------------------------

function signals() {
  const [section, body] = panel("Latest signals", { id: "signals", wide: true });
  const ready = keepFresh(body, async () => {
    const reply = await apiGet("/api/signals/latest");
    const rows = reply.rows;
    const waiting = reply.waiting || [];
    if (rows.length === 0 && waiting.length === 0) {
      fill(body, empty("No signals yet — the engine evaluates every 15 s once the tape is warm."));
      return;
    }
    const columns = [
      { label: "Strategy", value: (e) => e.strategy },
      { label: "Symbol", value: (e) => e.symbol },
      { label: "Evaluated", value: (e) => timeEl(e.tick) },
      { label: "Side", value: (e) => side(e.direction), tone: (e) => tone(e.direction) },
      { label: "Score", num: true, key: "score", value: (e) => number(e.score, 2) },
      { label: "Coverage", num: true, value: (e) => percent(e.coverage, 0) },
      {
        label: "Outcome",
        key: "outcome",
        value: (e) =>
          e.fired ? h("span", { class: "badge ok" }, "fired") : e.reason || "not fired",
      },
    ];
    fill(
      body,
      rows.length
        ? table(columns, rows, { label: "Latest evaluations",
            rowData: (e) => ({ strategy: e.strategy, symbol: e.symbol }),
          })
        : empty("No evaluation stored yet."),
      waiting.length
        ? h(
            "ul",
            { class: "waiting note", id: "signals-waiting" },
            waiting.map((w) =>
              h("li", {}, `${w.strategy} ${w.symbol}: waiting for ${w.waiting_for.join(", ")} since `,
                timeEl(w.since * 1000), ` — ${w.reason}`),
            ),
          )
        : null,
    );
  }, SIGNALS_EVERY_MS).first;
  return { section, ready };
}

// -- open positions and the risk guard ---------------------------------------------------------

const LIVE_OFF_NOTE = "Live trading is off";
const RISK_OFF_NOTE = "Risk guard runs with live trading; live is off.";
const STATE_BADGE = { ACTIVE: "ok", REDUCING: "warn", HALTED: "bad" };

/** `direction × (mark − entry) / r_distance`: how far the price has moved for the trade, in R. */
function moveR(trade, entryPrice, latestRates) {
  const rate = latestRates.get(trade.symbol);
  if (!rate || rate.mark_price === null || entryPrice === null || !trade.r_distance) return null;
  return (trade.direction * (rate.mark_price - entryPrice)) / trade.r_distance;
}

function trading(latestRates, ratesReady) {
  const [positionsSection, positionsBody] = panel("Open positions", { id: "positions", wide: true });
  const paperBox = h("div", { id: "paper-positions" });
  const liveBox = h("div", { id: "live-positions" });
  positionsBody.append(h("h3", {}, "Paper"), paperBox, h("h3", {}, "Live"), liveBox);
  const [riskSection, riskBody] = panel("Risk guard", { id: "risk", wide: true });

  let liveOn = null; // unknown until /api/risk answers; once off, off for this daemon's life

  async function loadRisk() {
    if (liveOn === null) liveOn = (await apiGet("/api/live/status")).enabled;
    return liveOn ? apiGet("/api/risk") : null;
  }

  function drawRisk(risk) {
    if (liveOn === false) {
      fill(riskBody, h("p", { class: "empty", id: "risk-state" }, RISK_OFF_NOTE));
      return;
    }
    const refused = Object.values(risk.refusals || {}).reduce((a, b) => a + b, 0);
    fill(
      riskBody,
      h(
        "p",
        { id: "risk-state", class: "risk-line" },
        h("span", { class: `badge ${STATE_BADGE[risk.state] || ""}` }, risk.state),
        risk.paused ? h("span", { class: "badge warn" }, "entries paused") : null,
        " since ",
        timeEl(risk.since_ms),
      ),
      risk.reason
        ? h("p", { id: "risk-reason" }, risk.rule ? `${risk.rule}: ${risk.reason}` : risk.reason)
        : null,
      h(
        "div",
        { class: "stats" },
        stat("Circuit breaks today", count(risk.breaks_today), { key: "breaks" }),
        stat("Entries refused", count(refused), { key: "refused" }),
        risk.resume_after_ms ? stat("Resumes after", timeEl(risk.resume_after_ms), { key: "resume" }) : null,
      ),
      h("p", { class: "note" }, h("a", { href: "/live" }, "Live trading and the emergency controls")),
    );
  }

  function drawPaper(trades) {
    const columns = [
      { label: "Strategy", value: (t) => t.strategy },
      { label: "Symbol", value: (t) => t.symbol },
      { label: "Side", value: (t) => side(t.direction), tone: (t) => tone(t.direction) },
      { label: "Entered", value: (t) => timeEl(t.entry_tick) },
      { label: "Entry", num: true, value: (t) => price(t.entry_price) },
      { label: "Stop", num: true, value: (t) => price(t.stop_loss) },
      { label: "Risk", num: true, value: (t) => usd(t.risk_usd) },
      {
        label: "Move at mark",
        num: true,
        key: "move",
        value: (t) => r(moveR(t, t.entry_price, latestRates)),
        tone: (t) => tone(moveR(t, t.entry_price, latestRates)),
      },
    ];
    fill(
      paperBox,
      table(columns, trades, { label: "Open paper trades",
        emptyText: "No open paper trade — one opens when a strategy's signal fires.",
        rowData: (t) => ({ trade: String(t.id), strategy: t.strategy, symbol: t.symbol }),
      }),
    );
  }

  function drawLive(positions) {
    const columns = [
      { label: "Strategy", value: (p) => p.trade.strategy },
      { label: "Symbol", value: (p) => p.trade.symbol },
      { label: "Side", value: (p) => side(p.trade.direction), tone: (p) => tone(p.trade.direction) },
      { label: "Status", value: (p) => p.trade.status },
      { label: "Entry", num: true, value: (p) => price(p.trade.entry_price) },
      { label: "Stop", num: true, value: (p) => price(p.trade.stop_price) },
      { label: "Quantity", num: true, value: (p) => number(p.trade.quantity, 4) },
      {
        label: "Move at mark",
        num: true,
        key: "move",
        value: (p) => r(moveR(p.trade, p.trade.entry_price, latestRates)),
        tone: (p) => tone(moveR(p.trade, p.trade.entry_price, latestRates)),
      },
      {
        label: "Protection",
        key: "protection",
        value: (p) =>
          p.protected ? h("span", { class: "badge ok" }, "stop on") : h("span", { class: "badge bad" }, "no stop"),
      },
    ];
    const rows = table(columns, positions, { label: "Open live trades",
      emptyText: "No open live trade.",
      rowData: (p) => ({ trade: String(p.trade.id), strategy: p.trade.strategy, symbol: p.trade.symbol }),
    });
    if (liveOn === false) {
      fill(
        liveBox,
        h("p", { class: "empty", id: "live-off" }, `${LIVE_OFF_NOTE} in this daemon (README, "Trading live").`),
        positions.length ? h("p", { class: "note" }, "Stored trades still open from an earlier run:") : null,
        positions.length ? rows : null,
      );
    } else {
      fill(liveBox, rows);
    }
  }

  // The risk guard first: whether live trading runs decides how live positions read. Live
  // off holds for the daemon's life, so it is asked once and polling stops.
  const risk = keepFresh(riskBody, async () => {
    drawRisk(await loadRisk());
    if (liveOn === false) risk.stop();
  }, TRADING_EVERY_MS);
  // Positions read their move at the mark from the rates: drawn once those are in.
  const ready = Promise.all([risk.first, ratesReady]).then(
    () =>
      keepFresh(positionsBody, async () => {
        const [paper, live] = await Promise.all([
          apiGet("/api/paper/trades", { status: "open", limit: 1000 }),
          apiGet("/api/live/positions"),
        ]);
        if (!paperBox.isConnected) fill(positionsBody, h("h3", {}, "Paper"), paperBox, h("h3", {}, "Live"), liveBox);
        drawPaper(paper.rows);
        drawLive(live.rows);
      }, TRADING_EVERY_MS).first,
  );
  return { positions: positionsSection, risk: riskSection, ready };
}

// -- the tape --------------------------------------------------------------------------------

function tape() {
  const [section, body] = panel("Trade tape", { id: "tape", wide: true });
  const ready = keepFresh(body, async () => {
    const reply = await apiGet("/api/trades/meta");
    const symbols = reply.symbols;
    if (symbols.every((m) => m.rows === 0)) {
      fill(body, empty("No trades stored yet — the tape fills once collection runs."));
      return;
    }
    const todayUtc = new Date().toISOString().slice(0, 10);
    const worst = (m) => (m.daily.length ? Math.min(...m.daily.map((d) => d.completeness)) : null);
    const today = (m) => {
      const day = m.daily.find((d) => d.day === todayUtc);
      return day ? day.completeness : null;
    };
    const columns = [
      { label: "Symbol", value: (m) => m.symbol },
      { label: "Trades stored", num: true, value: (m) => count(m.rows) },
      { label: "Complete", num: true, key: "complete", value: (m) => percent(m.completeness, 2) },
      { label: "Today (UTC)", num: true, key: "today", value: (m) => percent(today(m), 2) },
      { label: "Worst of 7 days", num: true, key: "worst", value: (m) => percent(worst(m), 2) },
      {
        label: "Holes",
        num: true,
        key: "holes",
        value: (m) => count(m.holes_left),
        tone: (m) => (m.holes_left > 0 ? "neg" : ""),
      },
      { label: "Gaps repaired", num: true, key: "gaps", value: (m) => `${count(m.gaps_repaired)} of ${count(m.gaps_seen)}` },
      { label: "Last trade", value: (m) => timeEl(m.last_ts) },
    ];
    fill(
      body,
      table(columns, symbols, { label: "Tape completeness per symbol", rowData: (m) => ({ symbol: m.symbol }) }),
      h("p", { class: "note" }, "Complete: stored trade ids over the id range since the first. ",
        h("a", { href: "/tape" }, "Days, gaps and holes")),
    );
  }, TAPE_EVERY_MS).first;
  return { section, ready };
}

// -- the page --------------------------------------------------------------------------------

startPage({
  title: "Overview",
  stylesheet: true,
  async render(main) {
    const latestRates = new Map();
    const market = markets(latestRates);
    const positions = trading(latestRates, market.ratesReady);
    const latest = signals();
    const tapes = tape();
    main.append(market.section, positions.risk, positions.positions, latest.section, tapes.section);
    await Promise.all([market.ready, positions.ready, latest.ready, tapes.ready]);
  },
});
