// The funding-rate page: log in, then a table of the latest rates refreshed every few seconds.
// No framework and no CDN: the page must work on a machine with no internet, and the
// Content-Security-Policy allows only scripts from this server. All text goes in through
// textContent, never innerHTML.
"use strict";

(() => {
  const REFRESH_KEY = "arbengine.refresh_token";
  const RATES_EVERY_MS = 3000;
  const STATS_EVERY_MS = 60000;
  const COLUMNS = ["symbol", "mark", "index", "funding", "annualised", "interval", "next", "week"];

  let accessToken = null;
  let timers = [];
  let refreshing = null;
  let weekly = new Map(); // symbol -> 7-day annualised mean

  const $ = (id) => document.getElementById(id);

  async function postJson(path, body) {
    const res = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    return { res, data };
  }

  function errorText(res, data) {
    return data && data.error ? data.error.message : `HTTP ${res.status}`;
  }

  function keepTokens(data) {
    accessToken = data.access_token;
    sessionStorage.setItem(REFRESH_KEY, data.refresh_token);
  }

  function forgetTokens() {
    accessToken = null;
    sessionStorage.removeItem(REFRESH_KEY);
  }

  async function rotate() {
    const token = sessionStorage.getItem(REFRESH_KEY);
    if (!token) return false;
    const { res, data } = await postJson("/api/refresh", { refresh_token: token });
    if (!res.ok) {
      forgetTokens();
      return false;
    }
    keepTokens(data);
    return true;
  }

  // One rotation at a time: two at once would spend the same refresh token twice,
  // which the server treats as theft and answers by revoking the session.
  function rotateOnce() {
    if (!refreshing) refreshing = rotate().finally(() => { refreshing = null; });
    return refreshing;
  }

  async function authGet(path) {
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const headers = accessToken ? { Authorization: `Bearer ${accessToken}` } : {};
      const res = await fetch(path, { headers });
      if (res.status !== 401) return res;
      if (attempt === 0 && (await rotateOnce())) continue;
    }
    showLogin("Your session has ended; please log in again.");
    throw new Error("not logged in");
  }

  // -- formatting ---------------------------------------------------------------------

  function price(x) {
    if (x === null || x === undefined) return "—";
    return x >= 100 ? x.toFixed(2) : x.toPrecision(6);
  }

  function percent(x, digits) {
    if (x === null || x === undefined) return "—";
    return `${(x * 100).toFixed(digits)}%`;
  }

  function countdown(when, now) {
    if (!when) return "—";
    const left = Math.max(0, Math.floor((when - now) / 1000));
    const h = String(Math.floor(left / 3600)).padStart(2, "0");
    const m = String(Math.floor((left % 3600) / 60)).padStart(2, "0");
    const s = String(left % 60).padStart(2, "0");
    return `${h}:${m}:${s}`;
  }

  function sign(x) {
    if (x === null || x === undefined || x === 0) return "";
    return x > 0 ? "pos" : "neg";
  }

  // -- table -----------------------------------------------------------------------------

  function rowFor(symbol) {
    const body = $("rates").tBodies[0];
    let row = body.querySelector(`tr[data-symbol="${CSS.escape(symbol)}"]`);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.symbol = symbol;
      for (const name of COLUMNS) {
        const cell = document.createElement(name === "symbol" ? "th" : "td");
        cell.className = name === "symbol" ? "" : `num ${name}`;
        if (name === "symbol") cell.scope = "row";
        row.appendChild(cell);
      }
      body.appendChild(row);
    }
    return row;
  }

  function setCell(row, index, text, tone) {
    const cell = row.children[index];
    cell.textContent = text;
    cell.classList.remove("pos", "neg");
    if (tone) cell.classList.add(tone);
  }

  function render(data) {
    for (const r of data.rates) {
      const row = rowFor(r.symbol);
      setCell(row, 0, r.symbol);
      setCell(row, 1, price(r.mark_price));
      setCell(row, 2, price(r.index_price));
      setCell(row, 3, percent(r.funding_rate, 4), sign(r.funding_rate));
      setCell(row, 4, percent(r.annualised_rate, 2), sign(r.annualised_rate));
      setCell(row, 5, `${r.funding_interval_hours}h`);
      setCell(row, 6, countdown(r.next_funding_time, data.as_of));
      const week = weekly.has(r.symbol) ? weekly.get(r.symbol) : null;
      setCell(row, 7, percent(week, 2), sign(week));
      row.dataset.ts = r.ts === null ? "" : String(r.ts);
    }
  }

  function setStatus(text, stale) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("stale", stale);
  }

  async function pollRates() {
    try {
      const res = await fetch("/api/rates");
      const data = await res.json();
      if (!res.ok) throw new Error(errorText(res, data));
      render(data);
      setStatus(`Updated ${new Date(data.as_of).toLocaleTimeString()}`, false);
    } catch (err) {
      setStatus(`Could not refresh: ${err.message}`, true);
    }
  }

  async function pollStats() {
    try {
      const res = await authGet("/api/stats");
      const data = await res.json();
      if (!res.ok) throw new Error(errorText(res, data));
      weekly = new Map(data.stats.map((s) => [s.symbol, s.annualised]));
    } catch (err) {
      // The rates still refresh; the weekly column simply keeps its last values.
    }
  }

  // -- views -------------------------------------------------------------------------------

  function stopPolling() {
    for (const t of timers) clearInterval(t);
    timers = [];
  }

  function showLogin(message) {
    stopPolling();
    forgetTokens();
    $("rates-view").hidden = true;
    $("whoami").hidden = true;
    $("logout").hidden = true;
    $("login-view").hidden = false;
    $("login-error").textContent = message || "";
    document.body.dataset.view = "login";
  }

  async function showRates(user) {
    $("login-view").hidden = true;
    $("rates-view").hidden = false;
    $("whoami").textContent = `${user.username} (${user.role})`;
    $("whoami").hidden = false;
    $("logout").hidden = false;
    document.body.dataset.view = "rates";
    stopPolling();
    await pollStats();
    await pollRates();
    timers.push(setInterval(pollRates, RATES_EVERY_MS));
    timers.push(setInterval(pollStats, STATS_EVERY_MS));
  }

  async function onLogin(event) {
    event.preventDefault();
    const button = $("login-submit");
    button.disabled = true;
    $("login-error").textContent = "";
    try {
      const { res, data } = await postJson("/api/login", {
        username: $("username").value.trim(),
        password: $("password").value,
      });
      if (!res.ok) {
        $("login-error").textContent = errorText(res, data);
        return;
      }
      keepTokens(data);
      $("password").value = "";
      await showRates(data.user);
    } catch (err) {
      $("login-error").textContent = `Could not reach the server: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  }

  async function onLogout() {
    const token = sessionStorage.getItem(REFRESH_KEY);
    if (token) await postJson("/api/logout", { refresh_token: token }).catch(() => null);
    showLogin("");
  }

  async function start() {
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", onLogout);
    // A reload keeps the session: the refresh token survives in this tab's sessionStorage.
    if (await rotateOnce()) {
      try {
        const res = await authGet("/api/me");
        if (res.ok) {
          await showRates(await res.json());
          return;
        }
      } catch (err) {
        // fall through to the login form
      }
    }
    showLogin("");
  }

  document.addEventListener("DOMContentLoaded", start);
})();
