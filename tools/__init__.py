"""Commands, run as `python -m tools.NAME` (each module's docstring is its manual): dataset
preparation, synthetic data, the fold index report, checkpoint conversion, benchmarks, the
exactness check, and the SVF paper's tables and figures. Tools may use every package; no package imports tools."""
