from postgate.cli import main

raise SystemExit(main())
