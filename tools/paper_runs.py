"""Rows of the paper's tables as runs: the `sh train.sh` / `sh test.sh` words of every fold and
the config those words resolve to (the same file and overrides scripts/args.sh gives train.py).
"""
import os
import shlex
from dataclasses import dataclass

from engine.choices import load_config
from util.data.folds import NUM_FOLDS
from util.fileio import REPO_ROOT

from tools.paper_tables import strategy_keys

SCRIPT_KEYS = ("dataset", "backbone", "mode", "arch", "shot")  # what the positional words set


@dataclass(frozen=True)
class Job:
    """Train, then test, one fold of one run. `words` follow `sh train.sh`; `test_words` are
    added for `sh test.sh` only; `config_file` and `overrides` are what the words resolve to."""
    label: str
    config_file: str
    words: tuple
    overrides: tuple
    test_words: tuple = ()

    def train_command(self):
        return shlex.join(("sh", "train.sh") + self.words)

    def test_command(self):
        return shlex.join(("sh", "test.sh") + self.words + self.test_words)

    def config(self, test=False):
        """The resolved config of the training run (test=True: of the test run)."""
        extra = self.test_words if test else ()
        return load_config(os.path.join(REPO_ROOT, self.config_file), self.overrides + extra)


def format_value(value):
    """A config value as the command line writes it (YAML: true, [layer3,layer4], 0.005)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def row_keys(row, strategies):
    """The row's key=value words after the positional ones: its keys (mode aside), the filter,
    then its strategy's keys."""
    keys = {k: v for k, v in row.keys.items() if k != "mode"}
    if not row.filter:
        keys["filter_novel"] = False
    keys.update(strategy_keys(strategies, row.strategy, row.arch))
    return tuple(f"{k}={format_value(v)}" for k, v in keys.items())


def row_jobs(row, dataset, strategies, folds=range(NUM_FOLDS)):
    """[(shot, Job)] of a runnable row: every shot it has numbers for, every fold."""
    jobs = []
    for shot in sorted(row.paper):
        for split in folds:
            positional = (dataset, f"split{split}", row.backbone, row.keys["mode"], row.arch,
                          str(shot))
            keys = row_keys(row, strategies)
            overrides = tuple(f"{k}={v}" for k, v in zip(SCRIPT_KEYS[1:], positional[2:])) + keys
            job = Job(f"{row.label}, {shot}-shot, fold {split}",
                      f"config/{dataset}_split{split}.yaml", positional + keys, overrides)
            if row.test:
                job = _with_test_keys(job, row.test)
            jobs.append((shot, job))
    return jobs


def _with_test_keys(job, test_keys):
    """Test-only keys (e.g. more test episodes) evaluate the training run's own checkpoint."""
    weight = os.path.join(job.config().exp_path, "snapshot", "best.pth")
    words = tuple(f"{k}={format_value(v)}" for k, v in test_keys.items()) + (f"weight={weight}",)
    return Job(job.label, job.config_file, job.words, job.overrides, words)


def base_learner_jobs(table, folds=range(NUM_FOLDS)):
    """BAM's stage 1 (arch pspnet), once per backbone and fold, for the table's bam rows."""
    backbones = dict.fromkeys(r.backbone for r in table.rows if r.runnable and r.arch == "bam")
    return [Job(f"BAM base learner, {backbone}, fold {split}",
                f"config/{table.dataset}_split{split}_base.yaml",
                (table.dataset, f"split{split}", backbone, "base"), (f"backbone={backbone}",))
            for backbone in backbones for split in folds]


def run_keys(tables, strategies):
    """The keys the paper's rows differ in: two configs that agree on these are the same row."""
    keys = set(SCRIPT_KEYS) | {"filter_novel"}
    for table in tables.values():
        for row in table.rows:
            keys |= set(row.keys) | set(row.test)
    for name in strategies:
        for arch in ("baseline", "pfenet", "bam"):
            keys |= set(strategy_keys(strategies, name, arch))
    return tuple(sorted(keys))


def matching_rows(cfg, tables, strategies):
    """[(row, shot)] whose fold-0 test config agrees with `cfg` on run_keys, in table order."""
    keys = run_keys(tables, strategies)
    wanted = {k: getattr(cfg, k) for k in keys}
    found = []
    for table in tables.values():
        if table.dataset != cfg.dataset:
            continue
        for row in table.rows:
            if not row.runnable or cfg.shot not in row.paper:
                continue
            job = dict(row_jobs(row, table.dataset, strategies, folds=(0,)))[cfg.shot]
            test_cfg = job.config(test=True)
            if {k: getattr(test_cfg, k) for k in keys} == wanted:
                found.append((row, cfg.shot))
    return found
