"""Allow ``python -m ft_helpers``."""

from .cli import main

raise SystemExit(main())
