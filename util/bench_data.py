"""Moved: the command `python -m util.bench_data` is now `python -m tools.bench_data`."""
raise SystemExit("python -m util.bench_data has moved: run python -m tools.bench_data")
