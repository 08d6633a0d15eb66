"""Moved: the command `python -m svf.bench_layers` is now `python -m tools.bench_svf_layers`."""
raise SystemExit("python -m svf.bench_layers has moved: run python -m tools.bench_svf_layers")
