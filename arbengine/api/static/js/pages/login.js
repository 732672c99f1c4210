// Log in, then go back to the page that sent us here (or the overview).
"use strict";

import { logIn, takeLoginNote } from "../api.js";
import { h } from "../dom.js";
import { startPage } from "../layout.js";

function nextPage() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  // Only a path on this site: never an address elsewhere.
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

startPage({
  title: "Log in",
  public: true,
  render(main, { user }) {
    if (user) {
      location.replace(nextPage());
      return;
    }
    const error = h("p", { id: "login-error", class: "error", role: "alert" }, takeLoginNote());
    const username = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
    const password = h("input", {
      id: "password", name: "password", type: "password", autocomplete: "current-password", required: true,
    });
    const submit = h("button", { id: "login-submit", type: "submit" }, "Log in");
    const form = h(
      "form",
      { id: "login-form", class: "stack", "aria-labelledby": "login-title" },
      h("label", { for: "username" }, "Username"), username,
      h("label", { for: "password" }, "Password"), password,
      submit, error,
      h("p", { class: "note" }, "No account? ", h("a", { href: "/register" }, "Register with an invite code"), "."),
    );
    main.querySelector("h1").id = "login-title";
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      submit.disabled = true;
      error.textContent = "";
      try {
        await logIn(username.value.trim(), password.value);
        location.assign(nextPage());
      } catch (err) {
        error.textContent = err.status === 0 ? `Could not reach the server: ${err.message}` : err.message;
        password.value = "";
      } finally {
        submit.disabled = false;
      }
    });
    main.append(form);
    username.focus();
  },
});
