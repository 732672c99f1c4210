// What this is, which version runs, and the notices the libraries we serve ask for.
"use strict";

import { publicGet } from "../api.js";
import { h, panel } from "../dom.js";
import { startPage } from "../layout.js";

startPage({
  title: "About",
  public: true,
  async render(main) {
    const [intro, introBody] = panel("arbengine", { id: "about-intro" });
    introBody.append(
      h("p", {}, "An engine for traders of Binance USD-M perpetual futures: a verified complete trade tape, " +
        "funding and market indicators, explainable signals scored by strategy files, paper and live " +
        "trading behind a risk guard, and backtests that replay the same code."),
      h("p", {}, "Every value on these pages comes from the daemon's JSON API, described at ",
        h("a", { href: "/api/openapi.json" }, "/api/openapi.json"), "."),
    );
    const version = h("p", { id: "about-version", class: "muted" });
    introBody.append(version);
    const [notices, noticesBody] = panel("Notices", { id: "about-notices" });
    noticesBody.append(
      h("p", {}, "Charts by TradingView Lightweight Charts™ (Apache License 2.0), Copyright © TradingView, Inc. ",
        h("a", { href: "https://www.tradingview.com/" }, "tradingview.com"), "."),
    );
    main.append(intro, notices);
    try {
      const openapi = await publicGet("/api/openapi.json");
      version.textContent = `Version ${openapi.info.version}`;
    } catch (err) {
      version.textContent = "Version unknown (the server did not answer).";
    }
  },
});
