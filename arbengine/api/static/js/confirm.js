// A confirmation step for actions that change something (ban a user, revoke an invite): a
// modal <dialog> that names what will happen, answered with a button press or Escape.
"use strict";

import { h } from "./dom.js";

/** Resolves true when confirmed, false when cancelled. */
export function confirmAction({ title, text, confirmLabel, danger = false }) {
  return new Promise((resolve) => {
    const confirm = h("button", { type: "button", class: danger ? "danger" : null, id: "confirm-yes" }, confirmLabel);
    const cancel = h("button", { type: "button", class: "secondary", id: "confirm-no" }, "Cancel");
    const dialog = h(
      "dialog",
      { id: "confirm", "aria-labelledby": "confirm-title", "aria-describedby": "confirm-text" },
      h("h2", { id: "confirm-title" }, title),
      h("p", { id: "confirm-text" }, text),
      h("div", { class: "toolbar" }, confirm, cancel),
    );
    const done = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    confirm.addEventListener("click", () => done(true));
    cancel.addEventListener("click", () => done(false));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      done(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
