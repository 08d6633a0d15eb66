"""Moved: the command `python -m svf.exactness` is now `python -m tools.exactness`."""
raise SystemExit("python -m svf.exactness has moved: run python -m tools.exactness")
