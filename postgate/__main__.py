from postgate.cli.main import main

raise SystemExit(main())
