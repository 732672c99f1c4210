from arbengine.cli import main

raise SystemExit(main())
