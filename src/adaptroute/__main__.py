"""`python -m adaptroute ...`: the same as the `adaptroute` command."""

from .cli import main

raise SystemExit(main())
