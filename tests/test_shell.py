"""train.sh / test.sh: argument handling and the command they launch (PYTHON is a recorder)."""
import os
import subprocess
import sys

import pytest

from util.fileio import REPO_ROOT


@pytest.fixture
def recorder(tmp_path):
    script = tmp_path / "python"
    script.write_text('#!/bin/sh\necho "$@"\n')
    script.chmod(0o755)
    return str(script)


def run(script, args, recorder, **env):
    full_env = dict(os.environ, PYTHON=recorder, **env)
    return subprocess.run(["sh", os.path.join(REPO_ROOT, script)] + args, env=full_env,
                          capture_output=True, text=True)


@pytest.mark.parametrize("script, entry", [("train.sh", "train.py"), ("test.sh", "test.py")])
def test_positional_arguments_become_config_and_overrides(recorder, script, entry):
    out = run(script, ["pascal", "split2", "resnet101", "freeze", "pfenet", "5", "base_lr=0.01"], recorder)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [entry, "--config", "config/pascal_split2.yaml", "backbone=resnet101",
                                  "mode=freeze", "arch=pfenet", "shot=5", "base_lr=0.01"]


def test_defaults_and_numeric_split(recorder):
    out = run("train.sh", ["coco", "1", "resnet50", "svf"], recorder)
    assert out.stdout.split() == ["train.py", "--config", "config/coco_split1.yaml", "backbone=resnet50",
                                  "mode=svf", "arch=baseline", "shot=1"]


def test_several_gpus_go_through_torchrun(recorder):
    out = run("train.sh", ["pascal", "split0", "resnet50", "svf"], recorder, GPUS="4")
    words = out.stdout.split()
    assert words[:3] == ["-m", "torch.distributed.run", "--nproc_per_node=4"]
    assert "train.py" in words and "mode=svf" in words


@pytest.mark.parametrize("args, message", [
    (["pascal", "split0", "resnet50"], "expected at least 4 arguments"),
    (["pascal", "split7", "resnet50", "svf"], "SPLIT must be split0 .. split3"),
    (["pascal", "split0", "resnet50", "svf", "bam", "zero"], "SHOT must be a positive integer"),
    (["pascal", "split0", "resnet50", "svf", "bam", "5", "oops"], "'oops' is not key=value"),
    (["voc", "split0", "resnet50", "svf"], "no config file config/voc_split0.yaml"),
])
def test_bad_arguments_print_the_usage(recorder, args, message):
    out = run("train.sh", args, recorder)
    assert out.returncode == 2
    assert message in out.stderr and "usage: sh train.sh DATASET SPLIT BACKBONE MODE" in out.stderr
    assert out.stdout == ""  # nothing was launched


def test_help_exits_cleanly(recorder):
    out = run("test.sh", ["-h"], recorder)
    assert out.returncode == 0 and "usage: sh test.sh" in out.stdout


def test_base_mode_runs_the_stage_one_config(recorder):
    out = run("train.sh", ["demo", "split0", "resnet50", "base"], recorder)
    assert out.stdout.split() == ["train.py", "--config", "config/demo_split0_base.yaml", "backbone=resnet50"]
    bad = run("train.sh", ["demo", "split0", "resnet50", "base", "bam"], recorder)
    assert bad.returncode == 2 and "MODE base (the base learner) takes no ARCH or SHOT" in bad.stderr


@pytest.mark.parametrize("args, message", [
    (["pascal", "split0", "resnet18", "svf"], "key 'backbone' must be one of resnet50, resnet101"),
    (["pascal", "split0", "resnet50", "lora"], "key 'mode' must be one of freeze, full"),
    (["pascal", "split0", "resnet50", "svf", "hsnet"], "key 'arch' must be one of baseline, pfenet"),
])
def test_names_are_checked_against_the_registries(args, message):
    """The shell passes names through; train.py checks them against the registries (one line)."""
    out = subprocess.run(["sh", os.path.join(REPO_ROOT, "train.sh")] + args, capture_output=True,
                         text=True, env=dict(os.environ, PYTHON=sys.executable))
    assert out.returncode == 1 and out.stderr.startswith("error: command line: ")
    assert message in out.stderr and out.stderr.count("\n") == 1
