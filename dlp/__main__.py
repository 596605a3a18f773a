"""`python -m dlp` runs the command line."""

from dlp.cli import main

raise SystemExit(main())
