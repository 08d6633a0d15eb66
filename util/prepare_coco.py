"""Moved: the command `python -m util.prepare_coco` is now `python -m tools.prepare_coco`."""
raise SystemExit("python -m util.prepare_coco has moved: run python -m tools.prepare_coco")
