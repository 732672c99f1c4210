// Pieces the Overview and Funding pages share: a panel part that refreshes itself and says
// when it could not.
"use strict";

import { failed, fill, h } from "./dom.js";
import { poll } from "./poll.js";

/**
 * Poll `load` every `everyMs` (poll.js: backoff, paused in a hidden tab) and resolve once its
 * first round is over, drawn or failed, so a page can be "ready" when every part shows
 * something. A failure before anything was drawn replaces `body` with the error (with
 * `replace: false` it is added below instead); a later one adds a line under the values,
 * which stay. Returns { first, stop }.
 */
export function keepFresh(body, load, everyMs, { replace = true } = {}) {
  let firstDone;
  const first = new Promise((resolve) => {
    firstDone = resolve;
  });
  let shown = false;
  const problem = h("p", { class: "error", role: "status", hidden: true });
  const stop = poll(async () => {
    try {
      await load();
      shown = true;
      problem.hidden = true;
    } catch (err) {
      if (!shown && replace) {
        fill(body, failed(err));
      } else {
        fill(
          problem,
          shown ? `Could not refresh: ${err.message}. The values above may be stale.` : `Could not load: ${err.message}`,
        );
        problem.hidden = false;
        if (!problem.isConnected) body.append(problem);
      }
      throw err;
    } finally {
      firstDone();
    }
  }, everyMs);
  return { first, stop };
}

/** "Long", "Short" or "—" for a direction of +1, −1 or none. */
export function side(direction) {
  return direction > 0 ? "Long" : direction < 0 ? "Short" : "—";
}
