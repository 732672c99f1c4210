// The Live page: the risk guard's state, the open positions with the orders protecting them,
// live trades against their paper twins, orders and events; for admins, the emergency
// controls (pause, resume, flatten, cancel-all), each confirmed first and acknowledged with
// the state it left. A daemon without live trading says so, and how to turn it on.
"use strict";

import { ApiFailure, apiGet, apiPost } from "../api.js";
import { failed, fill, h, loading, panel, refill, stat, table, timeEl } from "../dom.js";
import { DASH, count, duration, number, price, r, tone, usd } from "../format.js";
import { confirmAction } from "../confirm.js";
import { startPage } from "../layout.js";
import { poll } from "../poll.js";

const REFRESH_MS = 10000;
const ROWS = 50;
const STATES = { ACTIVE: "ok", REDUCING: "warn", HALTED: "bad" };
const TRADE_STATUS = { open: "ok", pending: "warn", closed: "", not_opened: "bad" };
const LEVELS = { info: "", warning: "warn", error: "bad" };
const ORDER_STATUS = { NEW: "ok", PARTIALLY_FILLED: "ok", FILLED: "", UNKNOWN: "warn", REJECTED: "bad", EXPIRED: "warn" };
const ROLES = { entry: "entry", sl: "stop-loss", breakeven_sl: "breakeven stop", tp1: "TP1", tp2: "TP2" };

const ms = (iso) => (iso ? Date.parse(iso) : null);
const side = (direction) => (direction > 0 ? "long" : "short");
const bps = (x) => (x === null || x === undefined ? DASH : `${x > 0 ? "+" : ""}${x.toFixed(1)} bps`);
/** Slippage: positive is worse than paper, so it reads red. */
const worse = (x) => (x > 0 ? "neg" : x < 0 ? "pos" : "");

function badge(text, kind) {
  return h("span", { class: `badge ${kind || ""}`.trim() }, text);
}

// -- live trading off -----------------------------------------------------------------------

function liveOff() {
  const [section, body] = panel("Live trading is off", { id: "live-off" });
  const code = (text) => h("code", {}, text);
  body.append(
    h("p", {}, "This daemon does not trade live: live trading is off unless its settings say ",
      code("[live] enabled = true"), ", and it is off by default. Signals, paper trading and every other page " +
      "work without it."),
    h("p", {}, "To trade live, set in the settings file (or the ", code("ARB_LIVE_…"), " variables) and restart the daemon:"),
    h(
      "ul",
      {},
      h("li", {}, code("enabled = true"), " in ", code("[live]"), ", and its ", code("strategies"),
        ": the loaded strategies whose signals are traded;"),
      h("li", {}, "the exchange keys ", code("[exchange] api_key"), " and ", code("api_secret"),
        ", best read from files: ", code("ARB_EXCHANGE_API_KEY_FILE"), ", ", code("ARB_EXCHANGE_API_SECRET_FILE"), ";"),
      h("li", {}, code("risk_per_trade_usd"), " and ", code("max_positions"), " for the size and number of trades."),
    ),
    h("p", {}, "Orders go to Binance's testnet (demo trading) unless ", code('environment = "production"'),
      " is written out. The risk guard always runs with live trading, and admins get emergency controls here. " +
      "The README's \u201cTrading live\u201d section walks through it on the testnet."),
  );
  return section;
}

// -- risk -----------------------------------------------------------------------------------

const LIMITS = [
  ["max_positions", "Positions at most", (v) => count(v)],
  ["max_positions_per_symbol", "Per symbol", (v) => count(v)],
  ["daily_loss_r", "Daily loss (R)", (v) => (v ? number(v, 2, "R") : "off")],
  ["daily_loss_usd", "Daily loss (USDT)", (v) => (v ? usd(v) : "off")],
  ["unrealised_loss_usd", "Unrealised loss", (v) => (v ? usd(v) : "off")],
  ["balance_floor_usd", "Balance floor", (v) => (v ? usd(v) : "off")],
  ["reduce_at", "Reducing at", (v) => `${Math.round(v * 100)}% of a limit`],
  ["hold_timeout_ms", "Longest hold", (v) => duration(v / 1000)],
  ["cooldown_ms", "Cooldown", (v) => duration(v / 1000)],
  ["flatten_on_halt", "Flatten on halt", (v) => (v ? "yes" : "no")],
];

function riskView(risk) {
  const c = risk.current || {};
  const reason = risk.state === "ACTIVE" ? null : [risk.rule, risk.reason].filter(Boolean).join(": ");
  const refusals = Object.entries(risk.refusals || {});
  return [
    h(
      "p",
      { class: "risk-state" },
      badge(risk.state, STATES[risk.state]), " ",
      risk.paused ? badge("entries paused", "warn") : badge("entries allowed", "ok"),
      reason ? h("span", { class: "risk-reason" }, ` ${reason}`) : null,
    ),
    h(
      "div",
      { class: "stats" },
      stat("State since", timeEl(risk.since_ms), { key: "since" }),
      risk.resume_after_ms ? stat("Resumes at the earliest", timeEl(risk.resume_after_ms), { key: "resume-after" }) : null,
      stat("Breaks today", count(risk.breaks_today), { key: "breaks", tone: risk.breaks_today ? "neg" : "" }),
      stat("Open positions", count(c.open_positions), { key: "open-positions" }),
      stat("Realised today", r(c.daily_realised_r), { key: "daily-r", tone: tone(c.daily_realised_r) }),
      stat("Realised today (USDT)", usd(c.daily_realised_usd, { signed: true }), { key: "daily-usd", tone: tone(c.daily_realised_usd) }),
      stat("Unrealised", usd(c.unrealised_usd, { signed: true }), { key: "unrealised", tone: tone(c.unrealised_usd) }),
      stat("Balance", usd(c.balance_usd), { key: "balance" }),
      stat("User stream behind", c.user_stream_behind_ms ? duration(c.user_stream_behind_ms / 1000) : "in step", {
        key: "stream", tone: c.user_stream_behind_ms ? "neg" : "",
      }),
    ),
    refusals.length
      ? h("p", { class: "note", id: "live-refusals" }, "Entries refused: ",
          refusals.map(([rule, n]) => `${rule} ${count(n)}`).join(", "), ".")
      : null,
    h("h3", {}, "Limits"),
    h(
      "div",
      { class: "stats", id: "live-limits" },
      LIMITS.filter(([key]) => key in (risk.limits || {})).map(([key, label, show]) =>
        stat(label, show(risk.limits[key]), { key: `limit-${key}` })),
    ),
    h("h3", {}, "Last changes"),
    table(
      [
        { label: "When", value: (t) => timeEl(ms(t.at)) },
        { label: "Change", value: (t) => (t.from && t.to ? `${t.from} → ${t.to}` : t.kind) },
        { label: "Rule", value: (t) => t.rule || DASH },
        { label: "Reason", value: (t) => t.reason || DASH },
      ],
      risk.transitions || [],
      { emptyText: "No change of state recorded: the guard has stayed as it is.", caption: "State changes, latest first" },
    ),
  ];
}

// -- positions, trades, orders, events ------------------------------------------------------

function ordersOf(position) {
  if (!position.orders.length) return h("span", { class: "muted" }, "none open");
  return h(
    "ul",
    { class: "orders" },
    position.orders.map((o) => h(
      "li",
      { data: { role: o.role } },
      `${ROLES[o.role] || o.role} ${o.type.toLowerCase().replace(/_/g, " ")}`,
      o.trigger_price !== null ? ` at ${price(o.trigger_price)}` : o.price !== null ? ` at ${price(o.price)}` : "",
      o.close_position ? " (whole position)" : o.quantity !== null ? ` × ${number(o.quantity, 3)}` : "",
      " ", badge(o.status, ORDER_STATUS[o.status]),
    )),
  );
}

function positionsTable(rows, flattenButton) {
  const columns = [
    { label: "Trade", value: (p) => `#${p.trade.id}`, key: "trade" },
    { label: "Strategy", value: (p) => p.trade.strategy },
    { label: "Symbol", value: (p) => p.trade.symbol, key: "symbol" },
    { label: "Side", value: (p) => side(p.trade.direction), key: "side", tone: (p) => (p.trade.direction > 0 ? "pos" : "neg") },
    { label: "Status", value: (p) => badge(p.trade.status, TRADE_STATUS[p.trade.status]), key: "status" },
    { label: "Quantity", value: (p) => number(p.trade.quantity, 3), num: true, key: "qty" },
    { label: "Entry", value: (p) => price(p.trade.entry_price), num: true, key: "entry" },
    { label: "Stop", value: (p) => price(p.trade.stop_price), num: true, key: "stop" },
    { label: "Risk", value: (p) => usd(p.trade.risk_usd), num: true, key: "risk" },
    {
      label: "Protected", key: "protected",
      value: (p) => (p.protected ? badge("stop in place", "ok") : badge("no stop", p.trade.status === "open" ? "bad" : "warn")),
    },
    { label: "Orders open on the exchange", value: ordersOf, key: "orders" },
    { label: "Opened", value: (p) => timeEl(p.trade.opened_at ?? p.trade.signal_tick) },
  ];
  if (flattenButton) columns.push({ label: "", value: flattenButton, key: "actions" });
  return table(columns, rows, {
    emptyText: "No open live position: a trade appears here from its signal until it is closed.",
    rowData: (p) => ({ trade: String(p.trade.id) }),
  });
}

function tradesTable(rows) {
  return table(
    [
      { label: "Signal", value: (t) => timeEl(t.signal_tick) },
      { label: "Trade", value: (t) => `#${t.id}`, key: "trade" },
      { label: "Strategy", value: (t) => t.strategy },
      { label: "Symbol", value: (t) => t.symbol, key: "symbol" },
      { label: "Side", value: (t) => side(t.direction), tone: (t) => (t.direction > 0 ? "pos" : "neg") },
      { label: "Status", value: (t) => badge(t.status.replace("_", " "), TRADE_STATUS[t.status]), key: "status" },
      { label: "Entry", value: (t) => price(t.entry_price), num: true, key: "entry" },
      { label: "Paper entry", value: (t) => price(t.paper_entry_price), num: true, key: "paper-entry" },
      { label: "Entry slippage", value: (t) => bps(t.entry_slippage_bps), num: true, key: "entry-slip-bps", tone: (t) => worse(t.entry_slippage_bps) },
      { label: "in R", value: (t) => r(t.entry_slippage_r), num: true, key: "entry-slip-r", tone: (t) => worse(t.entry_slippage_r) },
      { label: "Exit slippage", value: (t) => r(t.exit_slippage_r), num: true, key: "exit-slip-r", tone: (t) => worse(t.exit_slippage_r) },
      { label: "Exits", value: (t) => t.exit_reasons.join(", ") || DASH, key: "exits" },
      { label: "Paper exits", value: (t) => (t.paper_exit_reasons ? t.paper_exit_reasons.join(", ") || DASH : DASH) },
      { label: "Result", value: (t) => r(t.realised_r), num: true, key: "result", tone: (t) => tone(t.realised_r) },
      { label: "Paper", value: (t) => r(t.paper_result_r), num: true, key: "paper-result", tone: (t) => tone(t.paper_result_r) },
      { label: "vs paper", value: (t) => r(t.r_vs_paper), num: true, key: "vs-paper", tone: (t) => tone(t.r_vs_paper) },
      { label: "Result (USDT)", value: (t) => usd(t.realised_usd, { signed: true }), num: true, key: "usd", tone: (t) => tone(t.realised_usd) },
      { label: "Fees", value: (t) => usd(t.fees), num: true, key: "fees" },
      { label: "Funding", value: (t) => usd(t.funding, { signed: true }), num: true, key: "funding", tone: (t) => tone(t.funding) },
    ],
    rows,
    {
      emptyText: "No live trade yet: the live strategies' signals are traded as they fire.",
      rowData: (t) => ({ trade: String(t.id) }),
    },
  );
}

function summaryTable(rows) {
  return table(
    [
      { label: "Strategy", value: (s) => s.strategy, key: "strategy" },
      { label: "Trades", value: (s) => count(s.trades), num: true },
      { label: "Open", value: (s) => count(s.open), num: true },
      { label: "Closed", value: (s) => count(s.closed), num: true },
      { label: "Win rate", value: (s) => (s.win_rate === null ? DASH : `${Math.round(s.win_rate * 100)}%`), num: true },
      { label: "Total", value: (s) => r(s.total_r), num: true, key: "total-r", tone: (s) => tone(s.total_r) },
      { label: "Total (USDT)", value: (s) => usd(s.total_usd, { signed: true }), num: true, tone: (s) => tone(s.total_usd) },
      { label: "vs paper", value: (s) => r(s.r_vs_paper), num: true, key: "vs-paper", tone: (s) => tone(s.r_vs_paper) },
      { label: "Mean entry slippage", value: (s) => bps(s.entry_slippage_bps), num: true, tone: (s) => worse(s.entry_slippage_bps) },
      { label: "Same exits", value: (s) => `${count(s.same_exits)} of ${count(s.twins)}`, num: true },
    ],
    rows,
    { emptyText: "No live trade in the last year.", rowData: (s) => ({ strategy: s.strategy }) },
  );
}

function ordersTable(rows) {
  return table(
    [
      { label: "Stored", value: (o) => timeEl(ms(o.created_at)) },
      { label: "Client id", value: (o) => h("code", {}, o.client_order_id), key: "client-id" },
      { label: "Trade", value: (o) => (o.trade_id ? `#${o.trade_id}` : "none"), key: "trade" },
      { label: "Role", value: (o) => ROLES[o.role] || o.role, key: "role" },
      { label: "Symbol", value: (o) => o.symbol },
      { label: "Side", value: (o) => o.side.toLowerCase() },
      { label: "Type", value: (o) => o.type.toLowerCase().replace(/_/g, " ") },
      { label: "Quantity", value: (o) => (o.close_position ? "position" : number(o.quantity, 3)), num: true },
      { label: "Price", value: (o) => price(o.trigger_price ?? o.price), num: true, key: "price" },
      { label: "Status", value: (o) => badge(o.status, ORDER_STATUS[o.status]), key: "status" },
      { label: "Filled", value: (o) => number(o.filled_quantity, 3), num: true },
      { label: "Average", value: (o) => price(o.average_price), num: true },
      { label: "Since", value: (o) => timeEl(o.status_time) },
    ],
    rows,
    { emptyText: "No order in the last 7 days.", rowData: (o) => ({ order: o.client_order_id }) },
  );
}

function detailText(detail) {
  const entries = Object.entries(detail || {});
  if (!entries.length) return DASH;
  return entries.map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("; ");
}

function eventsTable(rows) {
  return table(
    [
      { label: "When", value: (e) => timeEl(ms(e.at)) },
      { label: "Level", value: (e) => badge(e.level, LEVELS[e.level]), key: "level" },
      { label: "What", value: (e) => e.kind, key: "kind" },
      { label: "Symbol", value: (e) => e.symbol || DASH },
      { label: "Strategy", value: (e) => e.strategy || DASH },
      { label: "Who", value: (e) => e.who, key: "who" },
      { label: "Detail", value: (e) => h("span", { class: "detail" }, detailText(e.detail)) },
    ],
    rows,
    { emptyText: "No event in the last 7 days.", rowData: (e) => ({ kind: e.kind }) },
  );
}

// -- the emergency controls (admins) --------------------------------------------------------

function stateLine(state) {
  if (!state) return "The exchange could not be read for the state after it.";
  const held = state.positions.map((p) => `${p.symbol} ${p.amount}`).join(", ") || "none";
  return `${state.paused ? "Entries paused" : "Entries allowed"} · positions on the exchange: ${held} · open orders: ${count(state.open_orders)}`;
}

function controlsPanel(act, symbolsNow) {
  const [section, body] = panel("Emergency controls", { id: "live-controls" });
  const ack = h("div", { id: "live-ack", role: "status" });
  const button = (id, text, kind, handler) => h("button", { id, type: "button", class: kind, on: { click: handler } }, text);
  const symbolSelect = h("select", { id: "flatten-symbol" });
  const flattenSymbol = button("control-flatten-symbol", "Flatten symbol", "danger", () => {
    const symbol = symbolSelect.value;
    if (!symbol) return;
    act({
      title: `Flatten ${symbol}?`,
      text: `Every ${symbol} position is closed at market with a reduce-only order and read back until it is zero; ` +
        "the trades' stops and take-profits are cancelled. Entries stay as they are.",
      confirmLabel: `Flatten ${symbol}`, danger: true,
    }, "/api/live/flatten", { symbol });
  });
  body.append(
    h("p", { class: "note" }, "Each acts on the running daemon at once, asks you first, and is recorded with your name."),
    h(
      "div",
      { class: "toolbar" },
      button("control-pause", "Pause entries", "secondary", () => act({
        title: "Pause live entries?",
        text: "No new live trade is opened until you resume. Open trades keep their stop-loss and take-profits and are still driven.",
        confirmLabel: "Pause entries",
      }, "/api/live/pause")),
      button("control-resume", "Resume entries", "secondary", () => act({
        title: "Resume live entries?",
        text: "The live strategies' signals open trades again. The risk guard's own state (REDUCING, HALTED) is not changed by this.",
        confirmLabel: "Resume entries",
      }, "/api/live/resume")),
      button("control-cancel-all", "Cancel all orders", "danger", () => act({
        title: "Cancel every order that protects nothing?",
        text: "Every open order and algo order that protects no open position is cancelled, and entries are paused. " +
          "Stops of open positions stay: to be out of a position, flatten it.",
        confirmLabel: "Cancel orders", danger: true,
      }, "/api/live/cancel-all")),
      button("control-flatten-all", "Flatten everything", "danger", () => act({
        title: "Flatten every position?",
        text: "Every position on the account is closed at market with reduce-only orders and read back until it is zero, " +
          "and entries are paused (resume when ready).",
        confirmLabel: "Flatten everything", danger: true,
      }, "/api/live/flatten", { all: true })),
    ),
    h(
      "div",
      { class: "toolbar" },
      h("label", { class: "picker", for: "flatten-symbol" }, h("span", {}, "Symbol with a position"), symbolSelect),
      flattenSymbol,
    ),
    ack,
  );
  const showSymbols = (symbols) => {
    const chosen = symbolSelect.value;
    fill(symbolSelect, symbols.length
      ? symbols.map((s) => h("option", { value: s, selected: s === chosen }, s))
      : h("option", { value: "" }, "none"));
    symbolSelect.disabled = flattenSymbol.disabled = symbols.length === 0;
  };
  showSymbols(symbolsNow);
  return { section, ack, showSymbols };
}

function showAck(ack, reply) {
  const under = reply.status === "requested"
    ? " The positions are being read back until zero: the events below say when it is done."
    : "";
  fill(
    ack,
    h("p", { id: "live-ack-result", class: reply.status === "failed" ? "error" : "" },
      badge(reply.status, reply.status === "failed" ? "bad" : reply.status === "done" ? "ok" : "warn"), " ",
      `${reply.command.replace("_", "-")}: ${reply.result}.${under}`),
    h("p", { id: "live-ack-state", class: "note" }, stateLine(reply.state)),
  );
}

// -- the page -------------------------------------------------------------------------------

startPage({
  title: "Live",
  stylesheet: true,
  async render(main, { user }) {
    // Whether live trading runs here. A failure is the daemon's for now; the refresh below
    // tries again.
    let risk = null;
    let firstError = null;
    try {
      if (!(await apiGet("/api/live/status")).enabled) {
        main.append(liveOff());
        return;
      }
      risk = await apiGet("/api/risk");
    } catch (err) {
      firstError = err;
    }
    const admin = user.role === "admin";
    const status = h("div", { id: "live-status" });
    const [riskPanel, riskBody] = panel("Risk guard", { id: "live-risk", wide: true });
    const [positionsPanel, positionsBody] = panel("Open positions", { id: "live-positions", wide: true });
    const [summaryPanel, summaryBody] = panel("Per strategy (last year)", { id: "live-summary", wide: true });
    const [tradesPanel, tradesBody] = panel("Trades", { id: "live-trades", wide: true });
    const [ordersPanel, ordersBody] = panel("Orders (last 7 days)", { id: "live-orders", wide: true });
    const [eventsPanel, eventsBody] = panel("Events (last 7 days)", { id: "live-events", wide: true });
    const note = (text) => h("p", { class: "note" }, text);
    const [positionsList, summaryList, tradesList, ordersList, eventsList] = [1, 2, 3, 4, 5].map(() => h("div", {}, loading()));
    positionsBody.append(note("Pending and open trades, oldest signal first, with the orders still open on the exchange."), positionsList);
    summaryBody.append(note("Slippage and results against the paper twins: a live trade and the paper trade of the same signal."), summaryList);
    tradesBody.append(note("Newest signal first. Slippage is against the paper twin: positive is worse than paper."), tradesList);
    ordersBody.append(note("Orders and algo orders the executor, the reconciler and the controls sent, newest first."), ordersList);
    eventsBody.append(note("What the executor, the reconciler, the risk guard and admins did, and why; newest first."), eventsList);

    let controls = null;
    let refresh = async () => {};
    async function act(confirmation, path, body) {
      if (!(await confirmAction(confirmation))) return;
      try {
        showAck(controls.ack, await apiPost(path, body));
      } catch (err) {
        fill(controls.ack, h("p", { id: "live-ack-result", class: "error", role: "alert" }, `Refused: ${err.message}`));
      }
      await refresh().catch(() => {});
    }
    const flattenTrade = (p) => h("button", {
      type: "button", class: "danger", data: { action: "flatten-trade" },
      on: { click: () => act({
        title: `Flatten trade #${p.trade.id}?`,
        text: `Trade #${p.trade.id} (${p.trade.strategy}, ${p.trade.symbol} ${side(p.trade.direction)}) is closed at market by ` +
          "the executor; its stop and take-profits are cancelled. Other positions are left as they are.",
        confirmLabel: `Flatten #${p.trade.id}`, danger: true,
      }, "/api/live/flatten", { trade_id: p.trade.id }) },
    }, "Flatten");

    if (admin) controls = controlsPanel(act, []);
    main.append(status, riskPanel, ...(controls ? [controls.section] : []), positionsPanel, summaryPanel, tradesPanel,
      ordersPanel, eventsPanel);

    refresh = async () => {
      const [riskNow, positions, summary, trades, orders, events] = await Promise.all([
        apiGet("/api/risk"),
        apiGet("/api/live/positions"),
        apiGet("/api/live/summary"),
        apiGet("/api/live/trades", { limit: ROWS }),
        apiGet("/api/live/orders", { limit: ROWS }),
        apiGet("/api/live/events", { limit: ROWS }),
      ]);
      risk = riskNow;
      refill(riskBody, riskView(risk));
      refill(positionsList, positionsTable(positions.rows, admin ? flattenTrade : null));
      refill(summaryList, summaryTable(summary.strategies));
      refill(tradesList, tradesTable(trades.rows), trades.truncated ? note(`The ${ROWS} newest are shown.`) : null);
      refill(ordersList, ordersTable(orders.rows));
      refill(eventsList, eventsTable(events.rows));
      if (controls) {
        const held = new Set([
          ...Object.keys((risk.current && risk.current.positions) || {}),
          ...positions.rows.filter((p) => p.trade.status === "open").map((p) => p.trade.symbol),
        ]);
        controls.showSymbols([...held].sort());
      }
      fill(status);
    };
    const onError = (err) => fill(status, failed(err));
    await refresh().catch((err) => onError(firstError || err));
    poll(refresh, REFRESH_MS, { onError, immediate: false });
  },
});
