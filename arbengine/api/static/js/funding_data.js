// Funding figures as the Overview and Funding pages both show them: a funding rate reads with
// four decimals of a percent (0.0100%, the way exchanges quote it), a yearly figure with two;
// the 7-day and year-to-date statistics are read together and looked up by symbol.
"use strict";

import { apiGet } from "./api.js";
import { percent } from "./format.js";

/** A per-interval funding rate: 0.0001 -> "0.0100%". */
export function fundingRate(x) {
  return percent(x, 4);
}

/** A yearly (annualised) rate: 0.1095 -> "10.95%". */
export function annualRate(x) {
  return percent(x, 2);
}

/** Rows keyed by their `symbol`. */
export function bySymbol(rows) {
  return new Map((rows || []).map((row) => [row.symbol, row]));
}

/** The 7-day (/api/stats) and year-to-date (/api/stats/ytd) statistics, by symbol. */
export async function loadFundingStats() {
  const [week, ytd] = await Promise.all([apiGet("/api/stats"), apiGet("/api/stats/ytd")]);
  return { week: bySymbol(week.stats), ytd: bySymbol(ytd.stats), year: ytd.year };
}

/** Whether anything is known about a symbol's funding: a sample or a settlement. */
export function hasSamples(stats) {
  return Boolean(stats && stats.samples > 0);
}
