"""test.py's engine: per-seed and mean results, the JSON record, the final line, batched
evaluation equal to one episode at a time, episode pictures (test.py's files, validation's
tensorboard images), and a missing checkpoint."""
import glob
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from engine.checkpoint import INFERENCE, save_checkpoint
from engine.inference import load_trained_model
from engine.loaders import build_dataset, build_loader
from engine.runtime import DistInfo
from engine.tester import run_test
from engine.trainer import Trainer
from tests.helpers.engine import tiny_config, write_config
from util.fileio import REPO_ROOT


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_voc, data_cache_dir):
    tmp = tmp_path_factory.mktemp("trained")
    cfg = tiny_config(tmp, synthetic_voc, data_cache_dir).replace(visualize=2)
    Trainer(cfg).fit()
    return tmp, cfg


def test_output_format_and_record(trained, synthetic_voc, data_cache_dir):
    tmp, cfg = trained
    path = write_config(tmp, synthetic_voc, data_cache_dir, name="cli.yaml")
    out = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "test.py"), "--config", path],
                         capture_output=True, text=True, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    for seed in (11, 12):
        assert any(re.match(rf"seed {seed} logits: mIoU 0\.\d{{4}}  FB-IoU 0\.\d{{4}}  per class: 1: ", l) for l in lines)
    assert any(re.match(r"mean over 2 seeds, logits: mIoU 0\.\d{4} ± 0\.\d{4}  FB-IoU", l) for l in lines)
    assert re.fullmatch(r"pascal fold 0: mIoU \d{1,3}\.\d\d, all-foreground \d{1,3}\.\d\d", lines[-1])
    records = glob.glob(os.path.join(cfg.exp_path, "result", "test_best-*.json"))
    record = json.load(open(max(records, key=os.path.getmtime)))
    assert [s["seed"] for s in record["per_seed"]] == [11, 12]
    assert record["per_seed"][0]["results"]["logits"]["episodes"] == 6
    summary = record["summary"]["logits"]["miou"]
    runs = [s["results"]["logits"]["miou"] for s in record["per_seed"]]
    assert summary["mean"] == pytest.approx(sum(runs) / 2)
    assert summary["std"] == pytest.approx(abs(runs[0] - runs[1]) / 2)
    assert set(record["summary"]) == {"logits", "all_foreground"}
    final = re.findall(r"\d+\.\d\d", lines[-1])  # percent, two decimals
    assert float(final[0]) == pytest.approx(100 * summary["mean"], abs=0.005)
    assert "100%" in out.stderr and "test (2 seeds)" in out.stderr  # one bar over both seeds


def test_visualize_writes_the_first_episodes_of_every_seed(trained, mixed_weight):
    _, cfg = trained
    run_test(cfg.replace(weight=mixed_weight, visualize=2, test_seeds=[11, 12]))
    record = max(glob.glob(os.path.join(cfg.exp_path, "result", "test_mixed-*.json")), key=os.path.getmtime)
    for seed in (11, 12):
        names = sorted(os.listdir(os.path.join(record[:-len(".json")], f"seed{seed}")))
        assert len(names) == 2, names
        assert all(re.fullmatch(r"0000[0-9]_class[1-5]_iou\d+\.\d\d\.png", n) for n in names)
    assert not glob.glob(os.path.join(cfg.exp_path, "result", "test_best-*", "seed*"))  # visualize=0


def test_validation_pictures_go_to_tensorboard(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    _, cfg = trained
    events = EventAccumulator(os.path.join(cfg.exp_path, "result"), size_guidance={"images": 0})
    events.Reload()
    assert sorted(events.Tags()["images"]) == ["val/episode0", "val/episode1"]
    image = events.Images("val/episode0")[-1]
    assert image.width > 2 * image.height  # support, prediction and ground truth side by side


@pytest.fixture(scope="module")
def mixed_weight(trained):
    """The trained model with its classifier's bias shifted so that about half of the pixels
    are predicted foreground: batched scoring must agree on real, mixed predictions."""
    tmp, cfg = trained
    model, cfg, fold, _ = load_trained_model(cfg, torch.device("cpu"))
    loader = build_loader(build_dataset(cfg, fold, "episodes", "val", 11), 2, False, 11, DistInfo(), 0, False)
    with torch.no_grad():
        logits = model(next(iter(loader)))["logits"]
        model.head.cls[-1].bias[1] -= (logits[:, 1] - logits[:, 0]).median()
    path = str(tmp / "mixed.pth")
    save_checkpoint(path, INFERENCE, model.state_dict(), cfg)
    return path


@pytest.mark.parametrize("ori_resize", [True, False])
def test_batched_evaluation_equals_one_episode_at_a_time(trained, mixed_weight, ori_resize):
    _, cfg = trained
    cfg = cfg.replace(weight=mixed_weight, ori_resize=ori_resize, test_seeds=[11])
    one = run_test(cfg.replace(batch_size_val=1))
    four = run_test(cfg.replace(batch_size_val=4))
    assert 0.01 < one["logits"]["miou"]["mean"] != one["all_foreground"]["miou"]["mean"]  # mixed predictions
    for name in one:
        assert one[name]["miou"]["mean"] == pytest.approx(four[name]["miou"]["mean"], abs=1e-6)
        assert one[name]["fbiou"]["mean"] == pytest.approx(four[name]["fbiou"]["mean"], abs=1e-6)


def test_missing_checkpoint_is_one_line(tmp_path, synthetic_voc, data_cache_dir):
    path = write_config(tmp_path, synthetic_voc, data_cache_dir)
    out = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "test.py"), "--config", path],
                         capture_output=True, text=True, cwd=REPO_ROOT)
    assert out.returncode == 1
    assert re.fullmatch(r"error: \S+best\.pth: checkpoint not found; train this configuration first "
                        r"\(train\.py\) or set weight=PATH\n", out.stderr)
