// The session and every request to the JSON API.
//
// The access token lives only in memory; the refresh token in this tab's sessionStorage, so a
// reload or a link to another page keeps the session (each page load rotates it once) while a
// closed tab ends it. A 401 rotates the pair once and retries; when that fails the session has
// ended and the user goes back to the login page with a note saying so.
"use strict";

const REFRESH_KEY = "arbengine.refresh_token";
const NOTE_KEY = "arbengine.login_note";

let accessToken = null;
let rotating = null;

/** An answer that was not 2xx, with the API's error code and message. */
export class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function readJson(res) {
  if (res.status === 204) return null;
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (err) {
    return null;
  }
}

async function send(method, path, body, token) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiFailure(0, "unreachable", "the server did not answer");
  }
  const data = await readJson(res);
  if (!res.ok) {
    const error = data && data.error ? data.error : {};
    throw new ApiFailure(res.status, error.code || `http_${res.status}`, error.message || `HTTP ${res.status}`);
  }
  return data;
}

function keep(pair) {
  accessToken = pair.access_token;
  sessionStorage.setItem(REFRESH_KEY, pair.refresh_token);
}

function forget() {
  accessToken = null;
  sessionStorage.removeItem(REFRESH_KEY);
}

async function rotate() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  if (!token) return false;
  try {
    keep(await send("POST", "/api/refresh", { refresh_token: token }));
    return true;
  } catch (err) {
    if (err.status === 0 || err.status >= 500) throw err; // the server, not the session
    forget();
    return false;
  }
}

/** One rotation at a time: two at once would spend the same refresh token twice, which the
 * server treats as theft and answers by revoking the session. */
export function rotateOnce() {
  if (!rotating) rotating = rotate().finally(() => { rotating = null; });
  return rotating;
}

/** Back to the login page, saying why, and coming back here after. */
export function sessionEnded(note) {
  forget();
  if (note) sessionStorage.setItem(NOTE_KEY, note);
  const here = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(here)}`);
}

/** The note the previous page left for the login form (read once). */
export function takeLoginNote() {
  const note = sessionStorage.getItem(NOTE_KEY);
  sessionStorage.removeItem(NOTE_KEY);
  return note || "";
}

async function authed(method, path, body) {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      return await send(method, path, body, accessToken);
    } catch (err) {
      if (err.status !== 401 || attempt > 0) throw err;
      if (!(await rotateOnce())) break;
    }
  }
  sessionEnded("Your session has ended; please log in again.");
  throw new ApiFailure(401, "session_ended", "the session has ended");
}

function withQuery(path, params) {
  if (!params) return path;
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** GET a route that needs the session. */
export function apiGet(path, params) {
  return authed("GET", withQuery(path, params));
}

/** POST to a route that needs the session. */
export function apiPost(path, body) {
  return authed("POST", path, body === undefined ? {} : body);
}

/** GET a public route. */
export function publicGet(path, params) {
  return send("GET", withQuery(path, params));
}

/** The signed-in user, or null: restores the session from the tab's refresh token. */
export async function currentUser() {
  if (!accessToken && !(await rotateOnce())) return null;
  try {
    return await send("GET", "/api/me", undefined, accessToken);
  } catch (err) {
    if (err.status !== 401) throw err;
    return (await rotateOnce()) ? send("GET", "/api/me", undefined, accessToken) : null;
  }
}

export async function logIn(username, password) {
  const pair = await send("POST", "/api/login", { username, password });
  keep(pair);
  return pair.user;
}

export async function register(inviteCode, username, password) {
  const pair = await send("POST", "/api/register", { invite_code: inviteCode, username, password });
  keep(pair);
  return pair.user;
}

export async function logOut() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  forget();
  if (token) await send("POST", "/api/logout", { refresh_token: token }).catch(() => null);
}
