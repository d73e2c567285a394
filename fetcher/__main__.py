from fetcher.cli.main import main

raise SystemExit(main())
