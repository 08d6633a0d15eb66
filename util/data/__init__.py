"""The data pipeline: raw files on disk -> list files -> per-fold index -> episodes (or
base-class images) -> batch dict (docs/data.md, docs/ARCHITECTURE.md)."""
