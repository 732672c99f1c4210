// How numbers and times read: every number with its unit, "—" for a value not known, times in
// the browser's time zone with UTC on hover. One place, so every page says things the same way.
"use strict";

export const DASH = "—";

const missing = (x) => x === null || x === undefined || Number.isNaN(x);

/** A price: two decimals from 100 up, six significant digits below. */
export function price(x) {
  if (missing(x)) return DASH;
  return Math.abs(x) >= 100 ? x.toFixed(2) : x.toPrecision(6);
}

/** A fraction as a percentage: 0.0001 -> "0.0100%". */
export function percent(x, digits = 2) {
  if (missing(x)) return DASH;
  return `${(x * 100).toFixed(digits)}%`;
}

/** US dollars with sign when asked: "-12.34 USDT". */
export function usd(x, { digits = 2, signed = false } = {}) {
  if (missing(x)) return DASH;
  const text = x.toFixed(digits);
  return `${signed && x > 0 ? "+" : ""}${text} USDT`;
}

/** A result in R units: "+1.50 R". */
export function r(x, digits = 2) {
  if (missing(x)) return DASH;
  return `${x > 0 ? "+" : ""}${x.toFixed(digits)} R`;
}

/** A plain number with a fixed number of decimals and an optional unit. */
export function number(x, digits = 2, unit = "") {
  if (missing(x)) return DASH;
  const text = x.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
  return unit ? `${text} ${unit}` : text;
}

/** A count with thousands separators. */
export function count(x) {
  if (missing(x)) return DASH;
  return x.toLocaleString("en-US");
}

/** Bytes in binary units: "1.5 MiB". */
export function bytes(x) {
  if (missing(x)) return DASH;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = x;
  let i = 0;
  while (Math.abs(value) >= 1024 && i < units.length - 1) {
    value /= 1024;
    i += 1;
  }
  return `${value.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** A length of time in seconds: "2 h 05 min", "45 s". */
export function duration(seconds) {
  if (missing(seconds)) return DASH;
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** Time left until `whenMs` as HH:MM:SS. */
export function countdown(whenMs, nowMs) {
  if (missing(whenMs)) return DASH;
  const left = Math.max(0, Math.floor((whenMs - nowMs) / 1000));
  const h = String(Math.floor(left / 3600)).padStart(2, "0");
  const m = String(Math.floor((left % 3600) / 60)).padStart(2, "0");
  const s = String(left % 60).padStart(2, "0");
  return `${h}:${m}:${s}`;
}

const LOCAL = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});

/** A timestamp (ms) in the browser's time zone. */
export function localTime(ms) {
  return missing(ms) ? DASH : LOCAL.format(new Date(ms));
}

/** The same timestamp in UTC, ISO 8601. */
export function utcTime(ms) {
  return missing(ms) ? DASH : new Date(ms).toISOString().replace(".000Z", "Z");
}

/** "pos", "neg" or "" by the sign of x: the CSS classes that colour a value. */
export function tone(x) {
  if (missing(x) || x === 0) return "";
  return x > 0 ? "pos" : "neg";
}
