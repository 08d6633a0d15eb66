"""test.py eft=true end to end for every episode arch on the synthetic VOC data (random
checkpoints), its record and lines, and the eft keys' checks."""
import json
import os
import subprocess
import sys

import pytest
import torch

from engine.checkpoint import INFERENCE, save_checkpoint
from engine.choices import load_config
from engine.model_state import inference_state, weight_references
from engine.tester import records_of, run_test
from model.backbone import fill_path
from model.registry import build_model
from tests.helpers.eft import ARCHS
from tests.helpers.engine import tiny_config, write_config
from util.config import ConfigError
from util.data.folds import get_fold
from util.fileio import REPO_ROOT

EFT = ["eft=true", "eft_rounds=2", "test_num=2", "test_seeds=[11]", "eft_min_pixels=1", "val_size=33"]


def random_checkpoint(tmp_path, cfg):
    """A random model of cfg written as test.py reads a best.pth (BAM / MSANet: a random base
    learner written where base_weight points, and referenced)."""
    fold = get_fold(cfg.dataset, cfg.split, cfg.use_split_coco)
    torch.manual_seed(0)
    if cfg.arch in ("bam", "msanet"):
        base_cfg = cfg.replace(arch="pspnet", shot=1, eft=False)
        base, _ = build_model(base_cfg, fold, load_weights=False, finetune=False)
        path = fill_path(cfg, "base_weight")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_checkpoint(path, INFERENCE, base.state_dict(), base_cfg)
    model, _ = build_model(cfg, fold, finetune=False)
    weight = str(tmp_path / f"{cfg.arch}.pth")
    save_checkpoint(weight, INFERENCE, inference_state(model), cfg,
                    references=weight_references(cfg, model, training=False))
    return weight


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_adapts_through_test_py(tmp_path, synthetic_voc, data_cache_dir, arch):
    cfg = tiny_config(tmp_path, synthetic_voc, data_cache_dir, f"arch={arch}", "reduce_dim=32",
                      "fem_scales=[1.0,0.5]", f"base_weight={tmp_path}/base/best.pth", *EFT)
    cfg = cfg.replace(weight=random_checkpoint(tmp_path, cfg))
    summary = run_test(cfg)
    assert {"logits", "logits_eft", "all_foreground"} <= set(summary)
    record = json.load(open(records_of(cfg)[0]))
    eft = record["eft"]
    assert sum(eft["rounds_chosen"]) == 2 and len(eft["rounds_chosen"]) == 3
    assert eft["gain"] == pytest.approx(eft["eft_miou"] - eft["plain_miou"])
    assert record["per_seed"][0]["eft"]["chosen"] == eft["rounds_chosen"]
    assert "oracle" not in eft and "logits_eft_oracle" not in summary


def test_the_command_prints_both_results_and_the_oracle_apart(tmp_path, synthetic_voc, data_cache_dir):
    cfg = tiny_config(tmp_path, synthetic_voc, data_cache_dir, "reduce_dim=32", *EFT)
    weight = random_checkpoint(tmp_path, cfg)
    path = write_config(tmp_path, synthetic_voc, data_cache_dir, name="cli.yaml")
    out = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "test.py"), "--config", path, f"weight={weight}",
                          "reduce_dim=32", "eft_select=oracle", *EFT], capture_output=True, text=True, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(l.startswith("seed 11 eft: mIoU ") and "vs plain" in l and "rounds chosen 0:" in l for l in lines)
    assert any(l.startswith("ORACLE (reads the query label; not a result): mIoU ") for l in lines)
    assert any(l.startswith("eft (s2q): mIoU ") for l in lines)
    record = json.load(open(records_of(cfg.replace(weight=weight))[0]))
    assert "reads the query label" in record["eft"]["oracle"]["note"]
    assert sum(record["eft"]["oracle"]["rounds_chosen"]) == 2


@pytest.mark.parametrize("override, message", [
    ("eft_select=best", "key 'eft_select' must be one of s2q, last, oracle; got 'best'"),
    ("eft_params=all", "key 'eft_params' must be one of head, published; got 'all'"),
    ("eft_s2q_output=base", "key 'eft_s2q_output' must be one of meta, final; got 'base'"),
    ("eft_keep=0", "key 'eft_keep' must be in (0, 1]; got 0.0"),
    ("eft_blend=1.5", "key 'eft_blend' must be in [0, 1]; got 1.5"),
    ("eft_rounds=-1", "key 'eft_rounds' must not be negative; got -1"),
    ("eft_min_pixels=0", "key 'eft_min_pixels' must be at least 1; got 0"),
    ("eft=maybe", "key 'eft' expects true/false, got 'maybe'"),
])
def test_bad_eft_keys_are_one_line(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(f"{REPO_ROOT}/config/pascal_split0.yaml", [override])
    assert str(err.value) == f"command line: {message}"


def test_eft_keys_do_not_change_the_run():
    base = load_config(f"{REPO_ROOT}/config/pascal_split0.yaml")
    adapted = load_config(f"{REPO_ROOT}/config/pascal_split0.yaml", ["eft=true", "eft_rounds=3", "eft_select=last"])
    assert adapted.exp_path == base.exp_path
    with pytest.raises(ConfigError, match="arch pspnet .* has no episodes"):
        load_config(f"{REPO_ROOT}/config/pascal_split0_base.yaml", ["eft=true"])
