// Live values refresh by polling: on success every `everyMs`; on failure the wait doubles up to
// `maxMs` (with jitter), so a daemon that is down is not hammered; a tab in the background stops
// polling and catches up at once when it is shown again.
"use strict";

const pollers = new Set();

document.addEventListener("visibilitychange", () => {
  for (const poller of pollers) {
    if (document.hidden) poller.pause();
    else poller.resume();
  }
});

/**
 * Call `load()` now (unless `immediate` is false: the page loaded it already) and then every
 * `everyMs`. `onError(err)` sees each failure (the previous values stay on screen). Returns a
 * function that stops the polling.
 */
export function poll(load, everyMs, { maxMs = 60000, onError = () => {}, immediate = true } = {}) {
  let timer = null;
  let wait = everyMs;
  let running = false;
  let stopped = false;

  async function tick() {
    timer = null;
    if (stopped || document.hidden || running) return;
    running = true;
    try {
      await load();
      wait = everyMs;
    } catch (err) {
      onError(err);
      wait = Math.min(maxMs, wait * 2);
    } finally {
      running = false;
    }
    schedule(wait * (0.9 + Math.random() * 0.2));
  }

  function schedule(ms) {
    if (stopped || document.hidden) return;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(tick, ms);
  }

  const poller = {
    pause() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    },
    resume() {
      if (!running) schedule(0);
    },
  };
  pollers.add(poller);
  schedule(immediate ? 0 : everyMs);
  return () => {
    stopped = true;
    poller.pause();
    pollers.delete(poller);
  };
}
