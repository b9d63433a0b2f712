from redemption_core.cli import main

raise SystemExit(main())
