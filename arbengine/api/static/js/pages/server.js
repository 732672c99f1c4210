// The Server page: what an operator checks first. Is the daemon healthy (and if not, why),
// which components run or restart, whether a channel is filling, how big the database is and
// which months of the tape have partitions; version and uptime. It refreshes itself: the
// daemon's in-memory state every few seconds, the database's sizes (a catalogue walk, slow to
// change) once a minute; the uptime ticks in between.
"use strict";

import { apiGet } from "../api.js";
import { empty, failed, fill, h, loading, panel, refill, stat, table, timeEl } from "../dom.js";
import { DASH, bytes, count, percent } from "../format.js";
import { startPage } from "../layout.js";
import { poll } from "../poll.js";

const SERVER_EVERY_MS = 5000;
const DATABASE_EVERY_MS = 60000;
const CHANNEL_FULL = 0.8;

/** Epoch seconds (the daemon's own bookkeeping) -> a <time>. */
const at = (seconds) => timeEl(seconds === null || seconds === undefined ? null : seconds * 1000);

/** Seconds as "3 d 04:05:06": a running clock, unlike format.duration, so it visibly ticks. */
function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hms = [Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60), s % 60]
    .map((n) => String(n).padStart(2, "0"))
    .join(":");
  const days = Math.floor(s / 86400);
  return days ? `${days} d ${hms}` : hms;
}

const STATES = {
  running: ["running", "ok"],
  pending: ["starting", "warn"],
  backoff: ["restarting", "warn"],
  failed: ["failed", "bad"],
  finished: ["finished", ""],
  stopped: ["stopped", ""],
};

function badge(text, kind) {
  return h("span", { class: `badge ${kind}`.trim() }, text);
}

function stateBadge(state) {
  const [text, kind] = STATES[state] || [state, ""];
  return badge(text, kind);
}

/** Poll `load`, resolving once its first round is over (drawn or failed), so the page is
 * ready when it shows data rather than placeholders. */
function pollFrom(load, everyMs, onError) {
  return new Promise((resolve) => {
    let first = true;
    poll(
      async () => {
        try {
          await load();
        } finally {
          if (first) {
            first = false;
            resolve();
          }
        }
      },
      everyMs,
      { onError },
    );
  });
}

// -- the daemon ------------------------------------------------------------------------------

function daemonStats(server, uptime) {
  const tasks = server.tasks || [];
  const running = tasks.filter((t) => t.state === "running").length;
  const restarts = tasks.reduce((sum, t) => sum + (t.restarts || 0), 0);
  const degraded = (server.degraded || []).length;
  const status = degraded
    ? badge(`degraded (${degraded})`, "warn")
    : badge("ok", "ok");
  return h(
    "div",
    { class: "stats" },
    stat("Status", status, { key: "status" }),
    stat("Version", server.version, { key: "version" }),
    stat("Uptime", uptime, { key: "uptime" }),
    stat("Started", at(server.started_at), { key: "started" }),
    stat("Components running", `${count(running)} of ${count(tasks.length)}`, { key: "running" }),
    stat("Restarts", count(restarts), { key: "restarts", tone: restarts ? "neg" : "" }),
    stat("Database", bytes(server.database_size_bytes), { key: "database-size" }),
    stat("Updated", timeEl(Date.now()), { key: "updated" }),
  );
}

function degradedView(reasons) {
  return table(
    [
      { label: "Component", value: (r) => r.component, key: "component" },
      { label: "Affects", value: (r) => r.subject || "all of it", key: "subject" },
      { label: "Reason", value: (r) => r.reason, key: "reason wrap" },
      { label: "Since", value: (r) => at(r.since), key: "since" },
    ],
    reasons,
    {
      emptyText: "Nothing is degraded: every part of the daemon reports healthy.",
      caption: "What the daemon reports wrong now (the same as /api/health)",
      rowData: (r) => ({ component: r.component, subject: r.subject || "" }),
    },
  );
}

function componentsView(tasks) {
  return table(
    [
      { label: "Component", value: (t) => t.name, key: "name" },
      { label: "State", value: (t) => stateBadge(t.state), key: "state" },
      { label: "Why", value: (t) => t.reason || DASH, key: "reason wrap" },
      {
        label: "Restarts", value: (t) => count(t.restarts), num: true, key: "restarts",
        tone: (t) => (t.restarts ? "neg" : ""),
      },
      { label: "Running since", value: (t) => at(t.started_at), key: "started" },
      {
        label: "Last error",
        value: (t) =>
          t.last_error
            ? `${t.last_error}${t.last_error_retryable === false ? " (not retryable)" : ""}`
            : DASH,
        key: "last-error wrap",
      },
      { label: "Last error at", value: (t) => at(t.last_error_at), key: "last-error-at" },
    ],
    tasks,
    {
      emptyText: "No component has started yet.",
      caption: "Supervised components, in start-up order: a failure restarts one with backoff",
      rowData: (t) => ({ component: t.name, state: t.state }),
    },
  );
}

function channelsView(channels) {
  const fullness = (c) => (c.capacity ? c.depth / c.capacity : null);
  return table(
    [
      { label: "Channel", value: (c) => c.name, key: "name" },
      {
        label: "Depth", value: (c) => count(c.depth), num: true, key: "depth",
        tone: (c) => (fullness(c) >= CHANNEL_FULL ? "neg" : ""),
      },
      { label: "Capacity", value: (c) => count(c.capacity), num: true, key: "capacity" },
      { label: "Full", value: (c) => percent(fullness(c), 1), num: true, key: "full" },
      { label: "When full", value: (c) => c.policy, key: "policy" },
      { label: "Events passed", value: (c) => count(c.put_total), num: true, key: "put" },
      {
        label: "Waits", value: (c) => count(c.waits_total), num: true, key: "waits",
        tone: (c) => (c.waits_total ? "neg" : ""),
      },
      {
        label: "Dropped", value: (c) => count(c.dropped_total), num: true, key: "dropped",
        tone: (c) => (c.dropped_total ? "neg" : ""),
      },
    ],
    channels,
    {
      emptyText: "No channel: this daemon neither collects nor runs the engine.",
      caption: "Bounded queues between components; a waiting writer is back-pressure, not loss",
      rowData: (c) => ({ channel: c.name }),
    },
  );
}

// -- symbols, start-up history and the exchange ---------------------------------------------

function symbolsView(symbols, engine) {
  if (!symbols && !engine) {
    return empty("This daemon neither collects nor runs the engine ([collect] and [engine] are off).");
  }
  const skipped = new Map(((symbols && symbols.skipped) || []).map((s) => [s.symbol, s]));
  const collecting = new Set((symbols && symbols.collecting) || []);
  const readiness = new Map(((engine && engine.symbols) || []).map((s) => [s.symbol, s]));
  const names = [...new Set([...((symbols && symbols.configured) || []), ...readiness.keys()])];
  const collection = (name) => {
    if (!symbols) return badge("not collecting", "");
    if (skipped.has(name)) return badge("skipped", "bad");
    if (collecting.has(name)) return badge("collecting", "ok");
    if (!symbols.checked) return badge("waiting for the exchange's list", "warn");
    return badge("not configured", "");
  };
  const ENGINE = { ready: ["evaluated", "ok"], waiting: ["waiting", "warn"], not_collected: ["not collected", ""] };
  const engineState = (name) => {
    const r = readiness.get(name);
    if (!engine) return "engine off";
    if (!r) return DASH;
    const [text, kind] = ENGINE[r.state] || [r.state, ""];
    return badge(text, kind);
  };
  const why = (name) => {
    const s = skipped.get(name);
    const r = readiness.get(name);
    return [s ? s.reason : null, r && r.state !== "ready" ? r.reason : null].filter(Boolean).join("; ") || DASH;
  };
  const summary = h(
    "div",
    { class: "stats" },
    symbols
      ? stat("Collecting", `${count(collecting.size)} of ${count(symbols.configured.length)}`, { key: "collecting" })
      : null,
    symbols ? stat("Skipped", count(skipped.size), { key: "skipped", tone: skipped.size ? "neg" : "" }) : null,
    engine ? stat("Evaluated", count(engine.ready), { key: "engine-ready" }) : null,
    engine ? stat("Waiting for history", count(engine.waiting), { key: "engine-waiting" }) : null,
    engine ? stat("Trades held", count(engine.held_trades), { key: "held" }) : null,
  );
  const rows = table(
    [
      { label: "Symbol", value: (n) => n, key: "symbol" },
      { label: "Collection", value: collection, key: "collection" },
      { label: "Engine", value: engineState, key: "engine" },
      { label: "Why", value: why, key: "reason wrap" },
      { label: "Waiting for", value: (n) => (readiness.get(n)?.waiting_for || []).join(", ") || DASH, key: "waiting" },
      { label: "Trades held", value: (n) => count(readiness.get(n)?.held_trades), num: true, key: "held" },
      { label: "Strategies", value: (n) => (readiness.get(n)?.strategies || []).join(", ") || DASH, key: "strategies" },
      { label: "Since", value: (n) => at(skipped.get(n)?.since ?? readiness.get(n)?.since), key: "since" },
    ],
    names,
    {
      emptyText: "No symbol is configured.",
      caption: "Configured symbols and those the strategies name",
      rowData: (n) => ({ symbol: n }),
    },
  );
  return [summary, rows];
}

function backfillView(backfill) {
  if (!backfill) return empty("No start-up history: this daemon does not collect.");
  return table(
    [
      { label: "Series", value: (b) => b.series, key: "series" },
      { label: "Symbols done", value: (b) => `${count(b.done)} of ${count(b.total)}`, num: true, key: "done" },
      { label: "REST calls", value: (b) => count(b.requests), num: true, key: "requests" },
      { label: "Started", value: (b) => at(b.started_at), key: "started" },
      {
        label: "Finished", key: "finished",
        value: (b) => (b.finished_at ? at(b.finished_at) : badge("in progress", "warn")),
      },
    ],
    backfill,
    {
      emptyText: "No history to fetch at start.",
      caption: "History fetched over REST since start, per series",
      rowData: (b) => ({ series: b.series }),
    },
  );
}

function restView(rest) {
  if (!rest) return empty("No exchange client: this daemon does not collect.");
  const paused = rest.paused_until_ms && rest.paused_until_ms > Date.now();
  const waiting = Object.entries(rest.waiting || {})
    .map(([priority, n]) => `${priority} ${count(n)}`)
    .join(", ");
  return [
    h(
      "div",
      { class: "stats" },
      stat("Weight used this minute", `${count(rest.used_weight)} of ${count(rest.budget)}`, { key: "weight" }),
      stat("Exchange limit", `${count(rest.weight_limit)} / min`, { key: "weight-limit" }),
      stat("Live reserve", `${count(rest.live_reserve)} / min`, { key: "live-reserve" }),
      stat("Repair and backfill share", `${count(rest.lower_share)} / min`, { key: "lower-share" }),
      stat("Calls waiting", waiting || DASH, { key: "waiting" }),
      stat("Paused until", paused ? timeEl(rest.paused_until_ms) : "not paused", {
        key: "paused", tone: paused ? "neg" : "",
      }),
    ),
    table(
      [
        { label: "Request group", value: (g) => g.name, key: "name" },
        { label: "Used", value: (g) => count(g.used), num: true, key: "used" },
        { label: "Allowed", value: (g) => count(g.allowed), num: true, key: "allowed" },
        { label: "Limit", value: (g) => count(g.limit), num: true, key: "limit" },
        { label: "Window", value: (g) => `${count(g.window_s)} s`, num: true, key: "window" },
        { label: "Paused until", value: (g) => timeEl(g.paused_until_ms), key: "paused" },
      ],
      rest.groups,
      {
        emptyText: "No request-count group.",
        caption: "Endpoints the exchange counts by requests rather than weight",
        rowData: (g) => ({ group: g.name }),
      },
    ),
  ];
}

// -- the database ------------------------------------------------------------------------------

function databaseView(db) {
  const partitionCount = db.partitioned.reduce((sum, t) => sum + t.count, 0);
  const parts = db.partitioned.map((t) => {
    const headingId = `partitions-${t.table}-title`;
    return h(
      "div",
      { class: "partitioned", data: { table: t.table }, role: "group", "aria-labelledby": headingId },
      h("h3", { id: headingId }, `${t.table}: partitions by ${t.key}`),
      h(
        "div",
        { class: "stats" },
        stat("Partitions", count(t.count), { key: `partitions-${t.table}` }),
        stat("Size", bytes(t.bytes), { key: `partitions-size-${t.table}` }),
        stat("Oldest from", timeEl(t.oldest_ms), { key: `oldest-${t.table}` }),
        stat("Newest until", timeEl(t.newest_ms), { key: `newest-${t.table}` }),
      ),
      table(
        [
          { label: "Partition", value: (p) => p.name, key: "name" },
          { label: "From", value: (p) => timeEl(p.from_ms), key: "from" },
          { label: "Until", value: (p) => timeEl(p.to_ms), key: "to" },
          { label: "Size", value: (p) => bytes(p.bytes), num: true, key: "bytes" },
          { label: "Rows (estimate)", value: (p) => count(p.rows_estimate), num: true, key: "rows" },
        ],
        t.partitions,
        {
          emptyText: "No partition: nothing can be stored in this table.",
          caption: `Partitions of ${t.table}, oldest first; a range ends before its Until`,
          rowData: (p) => ({ partition: p.name }),
        },
      ),
    );
  });
  return [
    h(
      "div",
      { class: "stats" },
      stat("Size on disk", bytes(db.size_bytes), { key: "db-size" }),
      stat("Tables", count(db.tables.length), { key: "tables" }),
      stat("Partitions", count(partitionCount), { key: "partitions" }),
      stat("Read", timeEl(Date.now()), { key: "db-read" }),
    ),
    table(
      [
        { label: "Table", value: (t) => t.name, key: "name" },
        { label: "Size", value: (t) => bytes(t.bytes), num: true, key: "bytes" },
        { label: "Rows (estimate)", value: (t) => count(t.rows_estimate), num: true, key: "rows" },
        {
          label: "Partitions", value: (t) => (t.partitions ? count(t.partitions) : DASH), num: true,
          key: "partitions",
        },
      ],
      db.tables,
      {
        emptyText: "No table: the database has not been migrated.",
        caption: "Largest first; sizes include indexes; row counts are PostgreSQL's estimates",
        rowData: (t) => ({ table: t.name }),
      },
    ),
    ...parts,
  ];
}

// -- the page ------------------------------------------------------------------------------------

startPage({
  title: "Server",
  async render(main) {
    // The page's stylesheet, loaded only once the session is known: with the frame's
    // `stylesheet: true` it is requested before that, and a visitor sent on to the login page
    // leaves it cut off mid-load (a failed request the browser reports).
    document.head.append(h("link", { rel: "stylesheet", href: "/static/css/server.css" }));
    const problem = h("div", { id: "server-error" });
    const [daemon, daemonBody] = panel("Daemon", { id: "server-daemon", wide: true });
    const [degraded, degradedBody] = panel("Degraded", { id: "server-degraded", wide: true });
    const [components, componentsBody] = panel("Components", { id: "server-components", wide: true });
    const [channels, channelsBody] = panel("Channels", { id: "server-channels", wide: true });
    const [database, databaseBody] = panel("Database", { id: "server-database", wide: true });
    const [symbols, symbolsBody] = panel("Symbols and engine", { id: "server-symbols", wide: true });
    const [rest, restBody] = panel("Exchange REST budget", { id: "server-rest", wide: true });
    const [backfill, backfillBody] = panel("Start-up history", { id: "server-backfill", wide: true });
    const databaseProblem = h("div", { id: "database-error" });
    main.append(
      problem,
      h("div", { class: "grid" }, daemon, degraded, components, channels, database, symbols, rest, backfill),
    );

    // The uptime ticks between polls from the daemon's last word and the time since.
    const uptime = h("span", { id: "uptime" }, DASH);
    let base = null;
    setInterval(() => {
      if (base) uptime.textContent = clock(base.uptime + (performance.now() - base.at) / 1000);
    }, 1000);

    let shown = false;
    const loadServer = async () => {
      const server = await apiGet("/api/server");
      base = { uptime: server.uptime_s, at: performance.now() };
      uptime.textContent = clock(server.uptime_s);
      fill(problem);
      refill(daemonBody, daemonStats(server, uptime));
      refill(degradedBody, degradedView(server.degraded || []));
      degraded.dataset.count = String((server.degraded || []).length);
      refill(componentsBody, componentsView(server.tasks || []));
      refill(channelsBody, channelsView(server.channels || []));
      refill(symbolsBody, symbolsView(server.symbols, server.engine));
      refill(restBody, restView(server.rest));
      refill(backfillBody, backfillView(server.backfill));
      shown = true;
    };
    const loadDatabase = async () => {
      const db = await apiGet("/api/server/database");
      refill(databaseBody, databaseProblem, databaseView(db));
      fill(databaseProblem);
    };
    const serverFailed = (err) => {
      // The values drawn last stay; the note says they are no longer current.
      const stale = shown ? h("p", { class: "note" }, "The values below are from the last answer.") : null;
      fill(problem, failed(err), stale);
    };
    const databaseFailed = (err) => {
      if (!databaseBody.contains(databaseProblem)) databaseBody.prepend(databaseProblem);
      fill(databaseProblem, failed(err));
    };
    const bodies = [
      daemonBody, degradedBody, componentsBody, channelsBody, databaseBody, symbolsBody, restBody, backfillBody,
    ];
    for (const body of bodies) fill(body, loading());
    await Promise.all([
      pollFrom(loadServer, SERVER_EVERY_MS, serverFailed),
      pollFrom(loadDatabase, DATABASE_EVERY_MS, databaseFailed),
    ]);
  },
});
