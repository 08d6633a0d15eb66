"""Moved: the command `python -m util.synthetic` is now `python -m tools.synthetic`."""
raise SystemExit("python -m util.synthetic has moved: run python -m tools.synthetic")
