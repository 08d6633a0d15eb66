"""What the model and the engine build on: the config (config.py), the data pipeline (data/),
seeding, atomic file writes, state-dict helpers, a process pool and the one-line error rule of
every command. Nothing here imports model/, engine/ or tools/."""
