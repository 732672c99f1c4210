// Building the page: elements from plain values, text only through textContent (never
// innerHTML, so nothing the server or a user wrote can become markup), and the states every
// view shares (loading, empty, failed).
"use strict";

import { DASH, localTime, utcTime } from "./format.js";

/**
 * An element: h("td", { class: "num", data: { symbol: "BTCUSDT" } }, "12.5", child, ...).
 * Attributes: class, data (dataset), on (event listeners), text-like values; false/null skip.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "data") Object.assign(el.dataset, value);
    else if (key === "on") for (const [name, fn] of Object.entries(value)) el.addEventListener(name, fn);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/**
 * Replace a panel's content, keeping where each of its tables was scrolled to (a table redrawn
 * by a refresh must not jump back under the reader's finger); a table not labelled otherwise
 * is named by the panel's heading.
 */
export function refill(body, ...children) {
  const scrolled = [...body.querySelectorAll(".table-scroll")].map((el) => el.scrollLeft);
  fill(body, ...children);
  const heading = body.closest("section")?.querySelector("h2");
  body.querySelectorAll(".table-scroll").forEach((el, i) => {
    if (heading && !el.dataset.labelled) el.setAttribute("aria-label", heading.textContent);
    if (scrolled[i]) el.scrollLeft = scrolled[i];
  });
}

/** A <time>: the browser's local time, UTC on hover. */
export function timeEl(ms) {
  if (ms === null || ms === undefined) return document.createTextNode(DASH);
  return h("time", { datetime: new Date(ms).toISOString(), title: `${utcTime(ms)} (UTC)` }, localTime(ms));
}

/** A section with a heading; returns [section, body] where body is where content goes. */
export function panel(title, { id, wide = false } = {}) {
  const body = h("div", { class: "panel-body" });
  const headingId = id ? `${id}-title` : undefined;
  const section = h(
    "section",
    { class: wide ? "panel wide" : "panel", id, "aria-labelledby": headingId },
    h("h2", { id: headingId }, title),
    body,
  );
  return [section, body];
}

/** The "nothing here yet" line, saying what would be here. */
export function empty(text) {
  return h("p", { class: "empty" }, text);
}

/** A failed load, in words (the previous values, if any, are replaced). */
export function failed(err) {
  const message = err && err.message ? err.message : String(err);
  return h("p", { class: "error", role: "alert" }, `Could not load: ${message}`);
}

/** A "loading" placeholder for the first fetch. */
export function loading() {
  return h("p", { class: "loading" }, "Loading…");
}

/**
 * A table of rows. columns: [{ label, value(row) -> text|Node, num?: bool, tone?(row) -> class,
 * key?: class name for the cell }]. `emptyText` shows when there are no rows; `label` names the
 * scrolling region for screen readers (default: the caption).
 */
export function table(columns, rows, { emptyText = "No data yet.", caption, rowData, label } = {}) {
  if (!rows || rows.length === 0) return empty(emptyText);
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)));
  const body = rows.map((row) =>
    h(
      "tr",
      { data: rowData ? rowData(row) : undefined },
      columns.map((c) => {
        const classes = [c.num ? "num" : "", c.key || "", c.tone ? c.tone(row) : ""].filter(Boolean).join(" ");
        return h("td", { class: classes || null }, c.value(row));
      }),
    ),
  );
  // A table wider than the screen scrolls in its box: keyboard users reach it (tabindex) and
  // screen readers hear what it is (a labelled region).
  return h(
    "div",
    {
      class: "table-scroll", tabindex: "0", role: "region", "aria-label": label || caption || "Table",
      data: label || caption ? { labelled: "true" } : undefined,
    },
    h("table", {}, caption ? h("caption", {}, caption) : null, h("thead", {}, head), h("tbody", {}, body)),
  );
}

/** A small labelled figure: label above, value below (cards and summaries). */
export function stat(label, value, { tone = "", key } = {}) {
  return h(
    "div",
    { class: "stat", data: key ? { stat: key } : undefined },
    h("span", { class: "stat-label" }, label),
    h("span", { class: `stat-value ${tone}`.trim() }, value),
  );
}

/** A <select> with a label; `onChange(value)`. */
export function picker(label, id, options, selected, onChange) {
  const select = h(
    "select",
    { id, on: { change: () => onChange(select.value) } },
    options.map((o) => {
      const [value, text] = Array.isArray(o) ? o : [o, o];
      return h("option", { value, selected: value === selected }, text);
    }),
  );
  return h("label", { class: "picker", for: id }, h("span", {}, label), select);
}
