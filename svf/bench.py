"""Moved: the command `python -m svf.bench` is now `python -m tools.bench_svf`."""
raise SystemExit("python -m svf.bench has moved: run python -m tools.bench_svf")
