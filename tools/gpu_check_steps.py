"""The pieces of tools.gpu_check: its workspace (synthetic data, config, a random base learner),
running the project's commands, and reading what they wrote (the `measured:` line of
tools.measured_run, test.py's result JSON, checkpoints)."""
import glob
import json
import math
import os
import subprocess
import sys

import torch

from engine.checkpoint import INFERENCE, save_checkpoint
from engine.choices import load_config
from model.registry import ARCHS
from tools.measured_run import MEASURED
from util.data.folds import get_fold
from util.fileio import REPO_ROOT, atomic_write_text

CONFIG = """_base_: {repo}/config/pascal_split0.yaml
data_root: {data}
train_list: {data}/train.txt
val_list: {data}/val.txt
index_cache_dir: {work}/cache
backbone: resnet50
mode: svf
pretrained: ''
train_size: {size}
val_size: {size}
batch_size: {batch}
epochs: 1
train_num: {train_num}
test_num: {test_num}
test_seeds: [510]
print_freq: 5
workers: {workers}
device: {device}
base_weight: {work}/base_learner.pth
exp_dir: {work}/exp
"""


class StepFailed(Exception):
    """A step of the check went wrong; the message says how (and where the log is)."""


def write_workspace(work, device, size, batch, iterations, workers):
    """Synthetic VOC data large enough for `size` crops (python -m tools.synthetic), the check's
    config and a randomly initialised PSPNet where BAM's base_weight points. Returns the
    config path."""
    data = os.path.join(work, "data")
    side = max(size, 160)  # smaller images lose classes to the 2048-pixel rule
    run_command([sys.executable, "-m", "tools.synthetic", "--out", data, "--format", "voc",
                 "--min-size", str(side), "--max-size", str(max(side * 5 // 4, 256))],
                os.path.join(work, "logs", "synthetic.log"))
    path = os.path.join(work, "gpu_check.yaml")
    atomic_write_text(path, CONFIG.format(
        repo=REPO_ROOT, data=data, work=work, size=size, batch=batch, device=device,
        train_num=batch * iterations, test_num=2 * batch, workers=workers))
    cfg = load_config(path, ["arch=pspnet"])
    torch.manual_seed(0)
    base = ARCHS["pspnet"].build(cfg, get_fold(cfg.dataset, cfg.split), False)
    save_checkpoint(cfg.base_weight, INFERENCE, base.state_dict(), cfg)
    return path


def episode_archs():
    """Every arch of model.registry.ARCHS that trains on episodes (not BAM's stage 1)."""
    return [arch for arch, entry in ARCHS.items() if entry.model.task == "episodes"]


def run_command(cmd, log, env=None, expect=0):
    """Run cmd in the repository root, its output to `log`; StepFailed unless it exits with
    `expect`. Returns the output."""
    os.makedirs(os.path.dirname(log), exist_ok=True)
    out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True,
                         env=dict(os.environ, **(env or {})))
    text = out.stdout + out.stderr
    atomic_write_text(log, " ".join(cmd) + "\n" + text)
    if out.returncode != expect:
        last = (text.strip().splitlines() or ["no output"])[-1]
        raise StepFailed(f"exit code {out.returncode} (expected {expect}): {last[:200]}; log {log}")
    return text


def train_command(config, arch, exp_dir, overrides=(), crash_after=0, torchrun=False):
    runner = ["-m", "tools.measured_run"]
    if crash_after:
        runner += ["--crash-after-epoch", str(crash_after)]
    if torchrun:
        runner = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"] + runner
    return ([sys.executable] + runner + [os.path.join(REPO_ROOT, "train.py"), "--config", config,
            f"arch={arch}", f"exp_dir={exp_dir}"] + list(overrides))


def test_command(config, arch, exp_dir, weight, batch_size_val):
    return [sys.executable, "-m", "tools.measured_run", os.path.join(REPO_ROOT, "test.py"),
            "--config", config, f"arch={arch}", f"exp_dir={exp_dir}", f"weight={weight}",
            f"batch_size_val={batch_size_val}"]


def parse_measured(text):
    """{steps, iterations_per_second, peak_allocated_mb} from tools.measured_run's line."""
    lines = [line for line in text.splitlines() if line.startswith(MEASURED)]
    if not lines:
        raise StepFailed(f"no '{MEASURED}' line in the output")
    pairs = (item.split("=", 1) for item in lines[-1][len(MEASURED):].split())
    return {k: float(v) for k, v in pairs}


def snapshot(exp_dir, name):
    """The one snapshot/<name> under exp_dir (train.py's layout)."""
    found = glob.glob(os.path.join(exp_dir, "**", "snapshot", name), recursive=True)
    if len(found) != 1:
        raise StepFailed(f"expected one snapshot/{name} under {exp_dir}, found {len(found)}")
    return found[0]


def test_result(exp_dir, shot=1):
    """(mIoU, FB-IoU, images per second) of test.py's result JSON under exp_dir (its first
    seed; images = episodes x (query + shots))."""
    found = glob.glob(os.path.join(exp_dir, "**", "result", "test_*.json"), recursive=True)
    if len(found) != 1:
        raise StepFailed(f"expected one result/test_*.json under {exp_dir}, found {len(found)}")
    with open(found[0]) as f:
        seed = json.load(f)["per_seed"][0]
    logits = seed["results"]["logits"]
    return logits["miou"], logits["fbiou"], logits["episodes"] * (1 + shot) / seed["seconds"]


def load_state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def resume_difference(uninterrupted, resumed, after_first_epoch):
    """How far a resumed run ended from the uninterrupted one: ||resumed - uninterrupted|| over
    every floating-point weight, relative to the uninterrupted run's change during the epochs
    after the crash (0 = identical). Counters and the GradScaler state must match exactly."""
    a, b, first = (load_state(p) for p in (uninterrupted, resumed, after_first_epoch))
    for key in ("epoch", "iteration"):
        if a[key] != b[key]:
            raise StepFailed(f"{key}: uninterrupted {a[key]}, resumed {b[key]}")
    if a.get("scaler") != b.get("scaler"):
        raise StepFailed(f"GradScaler state: uninterrupted {a.get('scaler')}, resumed {b.get('scaler')}")
    diff = change = 0.0
    for k, ta in a["model"].items():
        if ta.is_floating_point():
            diff += (b["model"][k].double() - ta.double()).square().sum().item()
            change += (ta.double() - first["model"][k].double()).square().sum().item()
    if change == 0:
        raise StepFailed("the weights did not change after the first epoch")
    return math.sqrt(diff / change)
