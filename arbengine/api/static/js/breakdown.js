// One evaluation explained: the direction, each factor's feature value, score, weight and
// contribution, the gates, the coverage, why it did not fire, and the strategy version (hash)
// that made it. The Signals page shows it for the tick chosen; the Paper page for a trade's
// entry signal. The arithmetic is the engine's (SIGNALS.md): score = 100 · Σ wᵢsᵢ / Σ wᵢ
// over the present factors, coverage = 100 · present weight / total weight.
"use strict";

import { apiGet } from "./api.js";
import { h, stat, table, timeEl } from "./dom.js";
import { DASH, number, percent } from "./format.js";

// The view's own rules, loaded once by whichever page shows a breakdown.
if (!document.querySelector('link[href="/static/css/breakdown.css"]')) {
  document.head.append(h("link", { rel: "stylesheet", href: "/static/css/breakdown.css" }));
}

/** A feature value of any magnitude: four significant digits, no trailing zeros. */
export function featureValue(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return DASH;
  if (x === 0) return "0";
  const abs = Math.abs(x);
  if (abs >= 1e6 || abs < 1e-6) return x.toExponential(3);
  return String(Number(x.toPrecision(4)));
}

/** The evaluation at `at` (or the latest before it): null when none is stored. */
export async function loadEvaluation(strategy, symbol, at) {
  return (await apiGet("/api/signals/evaluation", { strategy, symbol, at })).evaluation;
}

/** The strategies the engine runs now, by name (the threshold, the factors' settings). */
export async function loadStrategies() {
  const answer = await apiGet("/api/strategies");
  return new Map(answer.strategies.map((s) => [s.name, s]));
}

/** The link to the Signals page at one evaluation. */
export function signalsLink(strategy, symbol, tick) {
  const query = new URLSearchParams({ strategy, symbol, at: String(tick) });
  return `/signals?${query}`;
}

export function directionWord(d) {
  if (d === 1) return "Long";
  if (d === -1) return "Short";
  return "None";
}

function describeGate(name, gate) {
  const low = gate.low === null || gate.low === undefined ? "−∞" : featureValue(gate.low);
  const high = gate.high === null || gate.high === undefined ? "+∞" : featureValue(gate.high);
  const value = gate.value === null || gate.value === undefined ? "absent" : featureValue(gate.value);
  return `${name} ${value} outside ${low} … ${high}`;
}

/** Why an evaluation did not fire, in words (the engine's reason codes, README). */
export function whyNot(e, definition) {
  const doc = definition ? definition.document : null;
  const score = e.score === null || e.score === undefined ? DASH : number(e.score, 2);
  switch (e.reason) {
    case null:
    case undefined:
      return `Fired: a ${directionWord(e.direction).toLowerCase()} signal.`;
    case "no_price":
      return `No price: no trade within the strategy's maximum staleness${doc ? ` (${doc.max_staleness})` : ""}.`;
    case "no_atr":
      return "No ATR yet: fewer than 14 closed 5-minute candles in the history.";
    case "no_direction": {
      if (!doc) return "No direction: the order flow was too weak or not confirmed.";
      const dir = doc.direction;
      const confirm = dir.confirm && dir.confirm.length ? `, confirmed by ${dir.confirm.join(", ")} of the same sign` : "";
      return `No direction: needs |${dir.feature}| ≥ ${featureValue(dir.min)}${confirm}.`;
    }
    case "no_factors":
      return "No score: none of the factors' features was present.";
    case "below_threshold":
      return definition
        ? `Score ${score} is below the threshold ${number(definition.threshold, 0)}.`
        : `Score ${score} is below the threshold.`;
    case "low_coverage":
      return definition
        ? `Coverage ${percent(e.coverage / 100, 1)} is below the minimum ${percent(definition.min_coverage / 100, 0)}.`
        : `Coverage ${percent(e.coverage / 100, 1)} is below the minimum.`;
    case "gate_failed": {
      const failing = Object.entries(e.gates || {})
        .filter(([, g]) => g && typeof g === "object" && !g.passed)
        .map(([name, g]) => describeGate(name, g));
      return failing.length ? `Gate failed: ${failing.join("; ")}.` : "A gate failed.";
    }
    case "cooldown":
      return `In cooldown: it fired on this symbol less than ${doc ? doc.entry.cooldown : "the cooldown"} before.`;
    case "max_open": {
      const most = doc && doc.entry.max_open_per_symbol;
      return `Already ${most ?? "the most"} open paper position${most === 1 ? "" : "s"} of this strategy on this symbol.`;
    }
    default:
      return `Did not fire: ${e.reason}.`;
  }
}

function factorKind(spec) {
  if (!spec) return DASH;
  if (spec.unsigned) return "unsigned";
  if (spec.contrarian) return "contrarian";
  return "with direction";
}

/** The factors of the stored breakdown (the engine's shape; older rows hold only the sums). */
function factorRows(e, doc) {
  const stored = e.contributions && typeof e.contributions === "object" ? e.contributions : {};
  const specs = new Map(((doc && doc.factors) || []).map((f) => [f.feature, f]));
  let factors = stored.factors;
  if (!factors || typeof factors !== "object") {
    const sums = stored.contributions && typeof stored.contributions === "object" ? stored.contributions : stored;
    factors = Object.fromEntries(
      Object.entries(sums)
        .filter(([, v]) => typeof v === "number")
        .map(([name, c]) => [name, { weight: specs.get(name)?.weight ?? null, value: e.features?.[name] ?? null, score: null, contribution: c }]),
    );
  }
  const rows = Object.entries(factors).map(([feature, f]) => ({ feature, spec: specs.get(feature), ...f }));
  const presentWeight = rows.filter((r) => r.value !== null && r.value !== undefined).reduce((sum, r) => sum + (r.weight || 0), 0);
  for (const r of rows) {
    r.points = r.contribution !== null && r.contribution !== undefined && presentWeight > 0 ? (100 * r.contribution) / presentWeight : null;
  }
  // What drove the score first; absent factors last.
  rows.sort((a, b) => (b.contribution ?? -1) - (a.contribution ?? -1) || a.feature.localeCompare(b.feature));
  return { rows, presentWeight, totalWeight: rows.reduce((sum, r) => sum + (r.weight || 0), 0) };
}

function directionLine(e, doc) {
  if (!doc) return null;
  const dir = doc.direction;
  const features = e.features || {};
  const value = (name) => (name in features ? featureValue(features[name]) : "absent");
  const confirm = (dir.confirm || []).map((name) => `${name} ${value(name)}`).join(", ");
  return h(
    "p",
    { class: "note", data: { field: "direction-rule" } },
    `Direction from ${dir.feature} ${value(dir.feature)} (|x| ≥ ${featureValue(dir.min)})`,
    confirm ? `, confirmed by ${confirm}` : "",
    ".",
  );
}

/**
 * The breakdown of evaluation `e` (from /api/signals/evaluation); `definition` is the
 * strategy as loaded now (from /api/strategies), or null when it no longer runs.
 */
export function renderBreakdown(e, definition) {
  const doc = definition ? definition.document : null;
  const sameVersion = definition && definition.hash === e.strategy_hash;
  const { rows, presentWeight, totalWeight } = factorRows(e, doc);
  const fired = e.fired === true;
  const score = e.score === null || e.score === undefined ? DASH : number(e.score, 2);

  const summary = h(
    "div",
    { class: "stats breakdown-stats" },
    stat("Direction", directionWord(e.direction), { key: "direction" }),
    stat("Score", definition ? `${score} / ${number(definition.threshold, 0)}` : score, { key: "score" }),
    stat("Coverage", e.coverage === null || e.coverage === undefined ? DASH : percent(e.coverage / 100, 1), { key: "coverage" }),
    stat("Outcome", fired ? "Fired" : "Not fired", { key: "outcome", tone: fired ? "pos" : "" }),
  );

  const factorTable = table(
    [
      { label: "Factor", value: (r) => r.feature },
      { label: "Feature value", value: (r) => (r.value === null || r.value === undefined ? "absent" : featureValue(r.value)), num: true, key: "value" },
      { label: "Score sᵢ", value: (r) => (r.score === null || r.score === undefined ? DASH : number(r.score, 3)), num: true, key: "score" },
      { label: "Weight wᵢ", value: (r) => (r.weight === null || r.weight === undefined ? DASH : number(r.weight, 0)), num: true, key: "weight" },
      { label: "Contribution wᵢsᵢ", value: (r) => (r.contribution === null || r.contribution === undefined ? DASH : number(r.contribution, 2)), num: true, key: "contribution" },
      { label: "Score points", value: (r) => (r.points === null ? DASH : number(r.points, 2)), num: true, key: "points" },
      { label: "Full at", value: (r) => (r.spec ? featureValue(r.spec.full) : DASH), num: true, key: "full" },
      { label: "Kind", value: (r) => factorKind(r.spec), key: "kind" },
    ],
    rows,
    {
      caption: `Present weight ${number(presentWeight, 0)} of ${number(totalWeight, 0)}; score = 100 × Σ wᵢsᵢ / present weight`,
      emptyText: "No factors stored with this evaluation.",
      label: "Factors",
      rowData: (r) => ({ factor: r.feature, present: r.value === null || r.value === undefined ? "false" : "true" }),
    },
  );

  const gates = Object.entries(e.gates || {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, g]) => (g && typeof g === "object" ? { name, ...g } : { name, passed: Boolean(g) }));
  const gateTable = table(
    [
      { label: "Gate", value: (g) => g.name },
      { label: "Value", value: (g) => (g.value === null || g.value === undefined ? "absent" : featureValue(g.value)), num: true, key: "value" },
      { label: "Allowed", value: (g) => `${g.low === null || g.low === undefined ? "−∞" : featureValue(g.low)} … ${g.high === null || g.high === undefined ? "+∞" : featureValue(g.high)}`, num: true, key: "range" },
      { label: "Result", value: (g) => h("span", { class: g.passed ? "badge ok" : "badge bad" }, g.passed ? "pass" : "fail"), key: "result" },
    ],
    gates,
    { emptyText: "This strategy has no gates.", label: "Gates", rowData: (g) => ({ gate: g.name, passed: g.passed ? "true" : "false" }) },
  );

  const features = Object.entries(e.features || {}).sort(([a], [b]) => a.localeCompare(b));
  const featureTable = table(
    [
      { label: "Feature", value: ([name]) => name },
      { label: "Value", value: ([, v]) => featureValue(v), num: true },
    ],
    features,
    { emptyText: "No feature was present.", label: "All features" },
  );

  const versionNote = !definition
    ? h("p", { class: "note" }, `${e.strategy} is not among the strategies the engine runs now: the threshold and the factors' settings are not known here.`)
    : sameVersion
      ? null
      : h(
          "p",
          { class: "note", data: { field: "version-note" } },
          `Made by another version of ${e.strategy} than the one running now (${definition.hash.slice(0, 12)}…): the threshold and factor settings shown are today's.`,
        );

  return h(
    "div",
    {
      class: "breakdown",
      data: { breakdown: "", tick: String(e.tick), strategy: e.strategy, symbol: e.symbol, fired: fired ? "true" : "false" },
    },
    h("h3", {}, `${e.strategy} on ${e.symbol} at `, timeEl(e.tick)),
    summary,
    h("p", { class: fired ? "why pos" : "why", data: { field: "reason" } }, whyNot(e, definition)),
    directionLine(e, doc),
    h("h4", {}, "Factors"),
    factorTable,
    h("h4", {}, "Gates"),
    gateTable,
    h(
      "details",
      { class: "features" },
      h("summary", {}, `All features at this tick (${features.length})`),
      featureTable,
    ),
    h(
      "p",
      { class: "hash" },
      "Strategy hash ",
      h("code", { data: { field: "hash" }, title: "sha256 of the strategy file with its defaults" }, e.strategy_hash),
    ),
    versionNote,
  );
}
