"""``python -m engine.cli`` is the ``kaleem`` command."""

from engine.cli import main

raise SystemExit(main())
