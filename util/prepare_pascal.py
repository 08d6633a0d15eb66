"""Moved: the command `python -m util.prepare_pascal` is now `python -m tools.prepare_pascal`."""
raise SystemExit("python -m util.prepare_pascal has moved: run python -m tools.prepare_pascal")
