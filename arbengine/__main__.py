"""``python -m arbengine`` and the ``arbengine`` command."""

import sys

from arbengine.runtime.os_signals import hold_signals


def main() -> int:
    if sys.argv[1:2] == ["run"]:
        # Before the second of imports and start-up: a SIGHUP (reload) or SIGTERM sent
        # then is acted on once the daemon runs, instead of ending the process.
        hold_signals()
    from arbengine.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    raise SystemExit(main())
