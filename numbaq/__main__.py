"""``python -m numbaq demo``."""

from .cli import main

raise SystemExit(main())
