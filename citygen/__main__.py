from citygen.cli import main

raise SystemExit(main())
