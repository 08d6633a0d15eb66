"""tools.fold_table: the four folds' records, found through the config alone, become the
paper's table (percent, mean +- std over seeds) beside the paper's row; bad records are named."""
import csv
import json
import os

import numpy as np
import pytest

from engine.choices import load_config
from tools import fold_table
from engine.tester import new_record_path
from tools.paper_records import read_record
from util.fileio import REPO_ROOT

CONFIG = os.path.join(REPO_ROOT, "config", "pascal_split0.yaml")
SEEDS = [510, 365, 382]
MIOU = {0: [0.60, 0.62, 0.61], 1: [0.70, 0.69, 0.71], 2: [0.58, 0.60, 0.59], 3: [0.55, 0.56, 0.54]}


def overrides(tmp_path, *extra):
    return [f"exp_dir={tmp_path / 'exp'}", "mode=partial", "ft_kernels=3x3", *extra]


def write_record(cfg, values, meta=None, seeds=SEEDS, config=None):
    path = new_record_path(cfg)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    per_seed = []
    for i, (seed, value) in enumerate(zip(seeds, values)):
        results = {"logits": {"miou": value, "fbiou": 0.7, "class_iou": {}},
                   "all_foreground": {"miou": 0.2, "fbiou": 0.3, "class_iou": {}}}
        if meta:
            results["logits_meta"] = {"miou": meta[i], "fbiou": 0.7, "class_iou": {}}
        per_seed.append({"seed": seed, "results": results, "seconds": 1.0})
    with open(path, "w") as f:
        json.dump({"weight": "best.pth", "config": config or cfg.to_dict(), "per_seed": per_seed,
                   "summary": {}}, f)
    return path


def run(tmp_path, capsys, *extra, folds=(0, 1, 2, 3), csv_path=None):
    args = overrides(tmp_path, *extra)
    cfg = load_config(CONFIG, args)
    for split in folds:
        write_record(cfg.replace(split=split), MIOU[split])
    argv = ["--config", CONFIG] + args + (["--csv", str(csv_path)] if csv_path else [])
    fold_table.main(argv)
    return capsys.readouterr().out


def test_four_folds_give_the_mean_and_the_paper_row(tmp_path, capsys):
    out = run(tmp_path, capsys, csv_path=tmp_path / "t.csv")
    cells = [f"{100 * np.mean(MIOU[k]):.2f} ± {100 * np.std(MIOU[k]):.2f}" for k in range(4)]
    per_seed_mean = 100 * np.mean([MIOU[k] for k in range(4)], axis=0)
    mean = f"{np.mean([100 * np.mean(MIOU[k]) for k in range(4)]):.2f} ± {per_seed_mean.std():.2f}"
    assert f"| ours (logits) | {' | '.join(cells)} | {mean} |" in out
    assert ("| paper: supplement Table 7 r3 part fine-tune, 3x3 only | 59.57 | 69.96 | 61.74 | "
            "56.16 | 61.86 |") in out
    assert "mean ± std over 3 test seeds" in out and "missing" not in out
    with open(tmp_path / "t.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["run"] == "ours (logits)"
    assert float(rows[0]["fold1"]) == pytest.approx(100 * np.mean(MIOU[1]), abs=1e-4)
    assert float(rows[0]["mean_std"]) == pytest.approx(per_seed_mean.std(), abs=1e-4)
    assert rows[1]["fold0"] == "59.5700" and rows[1]["fold0_std"] == ""


def test_a_missing_fold_is_named_and_leaves_no_mean(tmp_path, capsys):
    out = run(tmp_path, capsys, folds=(0, 1, 3))
    ours = next(line for line in out.splitlines() if line.startswith("| ours"))
    assert ours.split(" | ")[3] == "–" and ours.endswith("| – |")
    assert "fold 2: no record " in out and "split2" in out and "test this fold with test.py" in out


def test_bam_meta_branch_is_a_row_of_its_own(tmp_path, capsys):
    args = [f"exp_dir={tmp_path / 'exp'}", "arch=bam", "mode=freeze"]
    cfg = load_config(CONFIG, args)
    for split in range(4):
        write_record(cfg.replace(split=split), MIOU[split], meta=[0.5, 0.5, 0.5])
    fold_table.main(["--config", CONFIG] + args)
    out = capsys.readouterr().out
    assert "| ours (logits_meta) | 50.00 ± 0.00 |" in out and "| ours (logits) |" in out
    assert "all_foreground" not in out


@pytest.mark.parametrize("damage, problem", [
    (lambda path: open(path, "w").write("{not json"), "is not readable JSON"),
    (lambda path: json.dump({"per_seed": []}, open(path, "w")), "no per-seed results"),
    (lambda path: json.dump({"per_seed": [{"seed": 1, "results": {"logits": {}}}]}, open(path, "w")),
     "per_seed[0].results.logits lacks a numeric 'miou'"),
    (lambda path: json.dump({"per_seed": [{"seed": 4, "results": {"logits": {"miou": float("nan")}}}]},
                            open(path, "w")), "mIoU of logits is nan for seed 4"),
])
def test_broken_records_are_one_line(tmp_path, damage, problem):
    cfg = load_config(CONFIG, overrides(tmp_path))
    path = write_record(cfg, MIOU[0])
    damage(path)
    record = read_record(path, 0, {})
    assert not record.ok and problem in record.problem and "\n" not in record.problem
    assert record.problem.startswith(f"fold 0: {path}: ") or "not readable JSON" in record.problem


def test_a_record_made_with_other_settings_is_not_used(tmp_path, capsys):
    cfg = load_config(CONFIG, overrides(tmp_path))
    other = dict(cfg.to_dict(), ft_kernels="1x1")
    for split in range(4):
        write_record(cfg.replace(split=split), MIOU[split],
                     config=dict(other, split=split) if split == 1 else None)
    fold_table.main(["--config", CONFIG] + overrides(tmp_path))
    out = capsys.readouterr().out
    assert "fold 1: " in out and "made with ft_kernels='1x1', not '3x3'" in out
