"""Moved: the command `python -m util.index` is now `python -m tools.index`."""
raise SystemExit("python -m util.index has moved: run python -m tools.index --config config/base/pascal.yaml data_root=...")
