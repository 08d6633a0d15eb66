"""The records test.py writes (result/test_<weight>-<time>.json), found through the config
(engine.tester.records_of) and read defensively: a missing file, a broken one, missing keys or
NaN give one line, never a crash. The newest record made with the expected settings is used.
"""
import json
import math
import os
from dataclasses import dataclass, field

from engine.evaluate import ALL_FOREGROUND
from engine.tester import record_stem, records_of


def find_record(cfg, expected=None):
    """The FoldRecord of cfg's fold: its newest usable record, else why none is usable."""
    paths = records_of(cfg)
    if not paths:
        where = os.path.join(cfg.exp_path, "result", record_stem(cfg) + "-<time>.json")
        return FoldRecord(cfg.split, where, problem=f"fold {cfg.split}: no record {where} (test this "
                                                    "fold with test.py)")
    records = [read_record(path, cfg.split, expected) for path in paths]
    return next((r for r in records if r.ok), records[0])


@dataclass
class FoldRecord:
    """One fold's test results: `seeds` lists the test seeds; `miou[output]` the mIoU per seed
    (fractions) for every prediction output (logits, BAM's logits_meta); `problem` is the one
    line that says why the fold cannot be used (then the rest is empty)."""
    split: int
    path: str
    seeds: list = field(default_factory=list)
    miou: dict = field(default_factory=dict)
    problem: str = ""

    @property
    def ok(self):
        return not self.problem


def read_record(path, split, expected=None):
    """The FoldRecord at `path`. `expected` ({key: value}) names config values the record must
    have been made with; a record made otherwise is reported, not used."""
    if not os.path.isfile(path):
        return FoldRecord(split, path, problem=f"fold {split}: no record {path} (test this fold "
                                               "with test.py)")
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return FoldRecord(split, path, problem=f"fold {split}: {path} is not readable JSON "
                                               f"({str(e).splitlines()[0]})")
    problem = _check(record, expected or {})
    if problem:
        return FoldRecord(split, path, problem=f"fold {split}: {path}: {problem}")
    seeds = [entry["seed"] for entry in record["per_seed"]]
    outputs = [name for name in record["per_seed"][0]["results"] if name != ALL_FOREGROUND]
    miou = {name: [float(entry["results"][name]["miou"]) for entry in record["per_seed"]]
            for name in outputs}
    return FoldRecord(split, path, seeds, miou)


def _check(record, expected):
    """The first thing that makes `record` unusable, as a phrase; '' when it is usable."""
    if not isinstance(record, dict) or not isinstance(record.get("per_seed"), list) \
            or not record["per_seed"]:
        return "no per-seed results ('per_seed')"
    names = None
    for i, entry in enumerate(record["per_seed"]):
        results = entry.get("results") if isinstance(entry, dict) else None
        if not isinstance(results, dict) or "seed" not in entry:
            return f"per_seed[{i}] lacks 'seed' or 'results'"
        outputs = [n for n in results if n != ALL_FOREGROUND]
        if not outputs or names not in (None, outputs):
            return f"per_seed[{i}] has outputs {outputs}, expected {names or 'some'}"
        names = outputs
        for name in outputs:
            value = results[name].get("miou") if isinstance(results[name], dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"per_seed[{i}].results.{name} lacks a numeric 'miou'"
            if not math.isfinite(value):
                return f"mIoU of {name} is {value} for seed {entry['seed']}"
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    for key, value in expected.items():
        if key in config and config[key] != value:
            return f"made with {key}={config[key]!r}, not {value!r}"
    return ""
