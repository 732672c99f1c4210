// What every page shares: the navigation bar (only the pages the user's role may see), who is
// signed in, the daemon's health banner, and the start of the page itself.
"use strict";

import { currentUser, logOut, sessionEnded } from "./api.js";
import { fill, h } from "./dom.js";
import { poll } from "./poll.js";
import { publicGet } from "./api.js";

/** The navigation bar, in order. `admin`: shown to admins only. */
export const PAGES = [
  { path: "/", label: "Overview" },
  { path: "/funding", label: "Funding" },
  { path: "/signals", label: "Signals" },
  { path: "/paper", label: "Paper" },
  { path: "/live", label: "Live" },
  { path: "/tape", label: "Tape" },
  { path: "/server", label: "Server" },
  { path: "/admin", label: "Admin", admin: true },
  { path: "/about", label: "About" },
];

const HEALTH_EVERY_MS = 15000;

function header(user) {
  const here = location.pathname;
  const links = PAGES.filter((p) => !p.admin || (user && user.role === "admin")).map((p) =>
    h("li", {}, h("a", { href: p.path, "aria-current": p.path === here ? "page" : null }, p.label)),
  );
  const account = user
    ? h(
        "div",
        { class: "account" },
        h("span", { id: "whoami" }, `${user.username} (${user.role})`),
        h("button", { id: "logout", type: "button", on: { click: onLogout } }, "Log out"),
      )
    : h("div", { class: "account" }, h("a", { href: "/login" }, "Log in"));
  return [
    h("a", { class: "brand", href: "/" }, "arbengine"),
    user ? h("nav", { "aria-label": "Pages" }, h("ul", {}, links)) : null,
    account,
  ];
}

async function onLogout() {
  await logOut();
  location.assign("/login");
}

function healthBanner() {
  const banner = h("div", { id: "health", class: "banner", role: "status", hidden: true });
  poll(
    async () => {
      const health = await publicGet("/api/health").catch((err) => {
        if (err.status === 503) return { status: "unavailable", reasons: [] };
        throw err;
      });
      if (health.status === "ok") {
        banner.hidden = true;
        return;
      }
      const reasons = (health.reasons || []).map((r) => `${r.component}${r.subject ? ` ${r.subject}` : ""}: ${r.reason}`);
      const text =
        health.status === "unavailable"
          ? "The daemon cannot reach its database: values shown may be stale."
          : `The daemon is degraded${reasons.length ? `: ${reasons.join("; ")}` : "."}`;
      fill(banner, text);
      banner.className = `banner ${health.status}`;
      banner.hidden = false;
    },
    HEALTH_EVERY_MS,
    {
      onError: () => {
        fill(banner, "The daemon does not answer: values shown may be stale.");
        banner.className = "banner unavailable";
        banner.hidden = false;
      },
    },
  );
  return banner;
}

/**
 * Start a page: restore the session (or go to the login page), draw the frame, then call
 * `render(main, { user })`. Options: `title`; `public` pages need no session; `admin` pages
 * send anyone else back to the overview; `stylesheet` loads /static/css/<page>.css, the
 * page's own rules.
 */
export async function startPage({ title, render, public: open = false, admin = false, stylesheet = false }) {
  document.title = `${title} · arbengine`;
  const main = document.getElementById("main");
  let user = null;
  try {
    user = await currentUser();
  } catch (err) {
    fill(main, h("p", { class: "error", role: "alert" }, `The server did not answer: ${err.message}`));
    return;
  }
  if (!user && !open) {
    sessionEnded("");
    return;
  }
  if (admin && user.role !== "admin") {
    location.replace("/");
    return;
  }
  // Only now: a visit that goes to the login page instead must not leave a load cut off.
  if (stylesheet) {
    document.head.append(h("link", { rel: "stylesheet", href: `/static/css/${document.body.dataset.page}.css` }));
  }
  fill(document.getElementById("top"), header(user));
  const heading = h("h1", {}, title);
  fill(main, user ? healthBanner() : null, heading);
  document.body.dataset.ready = "false";
  await render(main, { user });
  document.body.dataset.ready = "true";
}
