// Charts, drawn by TradingView's lightweight-charts from the npm package the daemon serves
// (never a CDN). Without the package (a wheel installed without npm) each chart's place says so
// and the rest of the page works. Times go in as UTC seconds and are shown in the browser's
// time zone.
"use strict";

import { h } from "./dom.js";
import { localTime } from "./format.js";

const LIBRARY = "/static/vendor/lightweight-charts.mjs";
let library = null;

/** The chart library, or null when it is not installed. */
export async function chartLibrary() {
  if (library === null) {
    library = import(LIBRARY).catch(() => undefined);
  }
  return (await library) || null;
}

const MISSING_NOTE =
  "Charts need the dashboard's npm package (lightweight-charts), which this installation does " +
  "not have: run `make install` from a source checkout, or use the container image.";

const zoneOffsetS = (s) => -new Date(s * 1000).getTimezoneOffset() * 60;

/** Milliseconds -> the chart's time axis (seconds, shifted so the axis reads local time). */
export function chartTime(ms) {
  const s = Math.floor(ms / 1000);
  return s + zoneOffsetS(s);
}

/**
 * A chart in a new box appended to `parent`, `height` px tall, labelled for screen readers.
 * Returns { chart, lib, box } or null (with the note shown) when charts are unavailable.
 */
export async function makeChart(parent, { label, height = 280, options = {} } = {}) {
  const box = h("div", { class: "chart", role: "img", "aria-label": label, data: { chart: label } });
  box.style.height = `${height}px`;
  parent.append(box);
  const lib = await chartLibrary();
  if (!lib) {
    box.removeAttribute("role");
    box.append(h("p", { class: "note" }, MISSING_NOTE));
    box.style.height = "auto";
    return null;
  }
  const styles = getComputedStyle(document.documentElement);
  const chart = lib.createChart(box, {
    autoSize: true,
    layout: {
      background: { color: "transparent" },
      textColor: styles.getPropertyValue("--muted").trim() || "#555",
      fontFamily: styles.fontFamily,
      attributionLogo: false,
    },
    grid: {
      vertLines: { color: styles.getPropertyValue("--line").trim() || "#eee" },
      horzLines: { color: styles.getPropertyValue("--line").trim() || "#eee" },
    },
    timeScale: { timeVisible: true, secondsVisible: false },
    localization: {
      // The axis already reads local time (chartTime); show it as such.
      timeFormatter: (t) => localTime((t - zoneOffsetS(t)) * 1000),
    },
    ...options,
  });
  box.dataset.drawn = "true";
  return { chart, lib, box };
}
