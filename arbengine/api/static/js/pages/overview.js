// The overview: a card per symbol, the latest signals, open positions, tape and risk at a glance.
"use strict";

import { startPage } from "../layout.js";
import { empty } from "../dom.js";

startPage({
  title: "Overview",
  render(main) {
    main.append(empty("The overview is being built."));
  },
});
