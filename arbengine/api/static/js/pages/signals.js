// The Signals page (being built).
"use strict";

import { empty } from "../dom.js";
import { startPage } from "../layout.js";

startPage({
  title: "Signals",
  render(main) {
    main.append(empty("This page is being built."));
  },
});
