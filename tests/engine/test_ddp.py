"""Two processes under torchrun (gloo, CPU) agree with one process on the whole batch.

Dropout is switched off in both runs (tests/engine/ddp_entry.py) and the losses are normalised by
the step's valid pixels over both processes, so the only difference left is the order of
floating-point sums: the updates agree to about 1e-5."""
import glob
import os
import re
import subprocess
import sys

import torch

from tests.helpers.engine import checkpoint_weights, tiny_config, write_config
from util.fileio import REPO_ROOT

ENTRY = os.path.join(REPO_ROOT, "tests", "engine", "ddp_entry.py")


RUN = ["mode=svf", "batch_size=4", "train_num=8"]


def launch(config, processes, exp_dir):
    args = [config, *RUN, f"exp_dir={exp_dir}"]
    if processes == 1:
        cmd = [sys.executable, ENTRY] + args
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", ENTRY] + args
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out


def test_two_processes_agree_with_one(tmp_path, synthetic_voc, data_cache_dir):
    config = write_config(tmp_path, synthetic_voc, data_cache_dir)
    launch(config, 1, tmp_path / "one")
    out = launch(config, 2, tmp_path / "two")
    assert "2 iterations/epoch" in out.stdout  # 8 episodes, 4 per step over both processes
    one = checkpoint_weights(tiny_config(tmp_path, synthetic_voc, data_cache_dir, *RUN, f"exp_dir={tmp_path / 'one'}"))
    two = checkpoint_weights(tiny_config(tmp_path, synthetic_voc, data_cache_dir, *RUN, f"exp_dir={tmp_path / 'two'}"))
    init = torch.load(tmp_path / "one" / "init.pth", weights_only=True)
    moved = [k for k in one if not torch.equal(init[k], one[k])]
    assert moved
    eps = torch.finfo(torch.float32).eps
    for k in moved:  # each update agrees to 1e-5 of itself, up to the rounding of the stored weight
        d1, d2 = (one[k] - init[k]).double(), (two[k] - init[k]).double()
        allowed = 1e-5 * d1.norm() + 2 * eps * one[k].double().norm()
        assert (d1 - d2).norm() <= allowed, (k, ((d1 - d2).norm() / d1.norm()).item())
    head = [k for k in moved if not k.startswith("backbone.")]
    assert head  # the head's updates are far above the rounding: the check has teeth there
    # validation sums are all-reduced: both runs score the same 6 episodes, the same way
    val = []
    for d in ("one", "two"):
        cfg = tiny_config(tmp_path, synthetic_voc, data_cache_dir, *RUN, f"exp_dir={tmp_path / d}")
        log = open(glob.glob(os.path.join(cfg.exp_path, "result", "train-*.log"))[0]).read()
        val.append(re.search(r"all_foreground: mIoU (\S+)", log).group(1))
    assert val[0] == val[1]  # the trivial prediction does not depend on the weights
