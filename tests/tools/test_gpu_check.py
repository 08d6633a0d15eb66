"""tools.gpu_check on the CPU: the one-line exit without CUDA, and how it reads what the
project's commands write (the measured line, test.py's JSON, checkpoints), finds the archs
and reports failed steps. tools.measured_run on a tiny script."""
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from model import registry
from tools import gpu_check
from tools import gpu_check_steps as steps
from util.fileio import REPO_ROOT


def test_without_cuda_one_line_exit_0_and_nothing_run(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def refuse(*args, **kwargs):
        raise AssertionError("gpu_check ran something without CUDA")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(steps, "write_workspace", refuse)
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("gpu-check: no CUDA device")


def test_parse_measured():
    text = "epoch 1/1 ...\nmeasured: steps=12 iterations_per_second=4.2500 peak_allocated_mb=9123.4\n"
    assert steps.parse_measured(text) == {"steps": 12, "iterations_per_second": 4.25,
                                          "peak_allocated_mb": 9123.4}
    assert steps.parse_measured("measured: steps=2") == {"steps": 2}
    with pytest.raises(steps.StepFailed, match="no 'measured:' line"):
        steps.parse_measured("Traceback ...")


def test_test_result_reads_the_first_seed(tmp_path):
    result = tmp_path / "exp" / "demo" / "result"
    result.mkdir(parents=True)
    record = {"per_seed": [{"seed": 510, "seconds": 4.0, "results": {"logits": {
        "miou": 0.25, "fbiou": 0.5, "episodes": 64}}}]}
    (result / "test_best.json").write_text(json.dumps(record))
    assert steps.test_result(str(tmp_path / "exp"), shot=1) == (0.25, 0.5, 32.0)
    with pytest.raises(steps.StepFailed, match="found 0"):
        steps.test_result(str(tmp_path / "nowhere"))


def checkpoint(path, weight, epoch=2, iteration=8, scale=1024.0):
    torch.save({"model": {"w": torch.tensor(weight), "n": torch.tensor(3)}, "epoch": epoch,
                "iteration": iteration, "scaler": {"scale": scale, "_growth_tracker": 1}}, path)
    return str(path)


def test_resume_difference(tmp_path):
    first = checkpoint(tmp_path / "first.pth", [0.0, 0.0], epoch=1, iteration=4)
    whole = checkpoint(tmp_path / "whole.pth", [3.0, 4.0])
    assert steps.resume_difference(whole, checkpoint(tmp_path / "same.pth", [3.0, 4.0]), first) == 0
    near = checkpoint(tmp_path / "near.pth", [3.0, 4.5])
    assert steps.resume_difference(whole, near, first) == pytest.approx(0.1)
    with pytest.raises(steps.StepFailed, match="iteration: uninterrupted 8, resumed 6"):
        steps.resume_difference(whole, checkpoint(tmp_path / "i.pth", [3.0, 4.0], iteration=6),
                                first)
    with pytest.raises(steps.StepFailed, match="GradScaler state"):
        steps.resume_difference(whole, checkpoint(tmp_path / "s.pth", [3.0, 4.0], scale=2.0),
                                first)


def test_episode_archs_come_from_the_registry(monkeypatch):
    def arch(task):
        return SimpleNamespace(model=SimpleNamespace(task=task))

    fake = {"meta": arch("episodes"), "stage1": arch("semantic"), "newnet": arch("episodes")}
    monkeypatch.setattr(registry, "ARCHS", fake)
    monkeypatch.setattr(steps, "ARCHS", fake)
    assert steps.episode_archs() == ["meta", "newnet"]


def test_failed_steps_are_named_and_their_dependants_not_run():
    check = gpu_check.Check()

    def fail():
        raise steps.StepFailed("exit code 1 (expected 0): boom; log x.log")

    first = check.step("baseline: train amp=fp16", fail)
    check.step("baseline: fp16 resume", lambda: pytest.fail("ran"), first)
    check.row("baseline", "train amp=off", 4.25, 9123.4, "it/s")
    check.row("baseline", "fp16 resumed", note="weights differ by 1.0e-04")
    assert check.failures == ["baseline: train amp=fp16: exit code 1 (expected 0): boom; log x.log",
                              "baseline: fp16 resume: not run (an earlier step it needs failed)"]
    lines = check.table().splitlines()
    assert lines[1].split() == ["baseline", "train", "amp=off", "4.25", "9123", "it/s"]
    assert lines[2].split()[3:5] == ["-", "-"]


def test_run_command_names_the_exit_code_and_the_log(tmp_path):
    log = str(tmp_path / "logs" / "x.log")
    with pytest.raises(steps.StepFailed, match=r"exit code 3 \(expected 0\): bad; log .*x\.log"):
        steps.run_command([sys.executable, "-c", "import sys; print('bad'); sys.exit(3)"], log)
    assert "bad" in open(log).read()


def test_measured_run_counts_optimizer_steps(tmp_path):
    script = tmp_path / "train_like.py"
    script.write_text("import torch\np = torch.nn.Parameter(torch.zeros(2))\n"
                      "opt = torch.optim.SGD([p], lr=0.1)\n"
                      "for _ in range(6):\n    p.grad = torch.ones(2)\n    opt.step()\n")
    out = subprocess.run([sys.executable, "-m", "tools.measured_run", "--skip", "2", str(script)],
                         capture_output=True, text=True, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    measured = steps.parse_measured(out.stdout)
    assert measured["steps"] == 6 and measured["iterations_per_second"] > 0
