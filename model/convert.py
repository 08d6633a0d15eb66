"""Moved: the command `python -m model.convert` is now `python -m tools.convert`."""
raise SystemExit("python -m model.convert has moved: run python -m tools.convert")
