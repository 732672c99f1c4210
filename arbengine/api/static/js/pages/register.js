// Register with an invite code (an admin makes them on the Admin page or with the CLI).
"use strict";

import { register } from "../api.js";
import { h } from "../dom.js";
import { startPage } from "../layout.js";

startPage({
  title: "Register",
  public: true,
  render(main, { user }) {
    if (user) {
      location.replace("/");
      return;
    }
    const field = (id, label, attrs) => [h("label", { for: id }, label), h("input", { id, name: id, required: true, ...attrs })];
    const error = h("p", { id: "register-error", class: "error", role: "alert" });
    const submit = h("button", { id: "register-submit", type: "submit" }, "Create account");
    const invite = new URLSearchParams(location.search).get("invite") || "";
    const form = h(
      "form",
      { id: "register-form", class: "stack", "aria-labelledby": "register-title" },
      field("invite", "Invite code", { autocomplete: "off", value: invite }),
      field("username", "Username", { autocomplete: "username" }),
      field("password", "Password", { type: "password", autocomplete: "new-password", minlength: "8" }),
      submit, error,
      h("p", { class: "note" }, "Have an account? ", h("a", { href: "/login" }, "Log in"), "."),
    );
    main.querySelector("h1").id = "register-title";
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      submit.disabled = true;
      error.textContent = "";
      try {
        await register(form.invite.value.trim(), form.username.value.trim(), form.password.value);
        location.assign("/");
      } catch (err) {
        error.textContent = err.status === 0 ? `Could not reach the server: ${err.message}` : err.message;
      } finally {
        submit.disabled = false;
      }
    });
    main.append(form);
  },
});
