"""Checkpoints: atomic writes, weights_only reads, one-line errors for foreign or broken files."""
import os

import pytest
import torch
import torch.nn as nn

from engine.checkpoint import INFERENCE, load_checkpoint, load_model_weights, save_checkpoint
from engine.choices import load_config
from util.fileio import REPO_ROOT


CFG = load_config(os.path.join(REPO_ROOT, "config", "pascal_split0.yaml"))


def test_round_trip_leaves_no_temporary_file(tmp_path):
    model = nn.Linear(3, 2)
    path = tmp_path / "snap" / "best.pth"
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    save_checkpoint(str(path), INFERENCE, model.state_dict(), CFG, optimizer=optimizer.state_dict(), epoch=3)
    assert os.listdir(path.parent) == ["best.pth"]
    state = load_checkpoint(str(path))
    assert state["epoch"] == 3 and "optimizer" in state and state["kind"] == INFERENCE
    assert state["run"]["arch"] == "baseline" and state["run"]["split"] == 0 and state["config"]["shot"] == 1
    other = nn.Linear(3, 2)
    load_model_weights(other, state, str(path))
    assert torch.equal(other.weight, model.weight)


def test_foreign_and_broken_files(tmp_path):
    published = tmp_path / "pfenet.pth"
    torch.save({"state_dict": {"layer0.0.weight": torch.zeros(1)}}, published)
    with pytest.raises(ValueError, match=r"a published checkpoint; convert it first: "
                                         r"python -m tools.convert"):
        load_checkpoint(str(published))
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(published.read_bytes()[:40])
    with pytest.raises(ValueError, match="cut.pth: not a readable checkpoint"):
        load_checkpoint(str(truncated))
    with pytest.raises(FileNotFoundError, match="missing.pth: checkpoint not found"):
        load_checkpoint(str(tmp_path / "missing.pth"))


def test_weights_that_do_not_fit_name_the_keys(tmp_path):
    path = tmp_path / "a.pth"
    save_checkpoint(str(path), INFERENCE, nn.Linear(3, 2).state_dict(), CFG)
    with pytest.raises(ValueError, match=r"a.pth: does not fit this model \(check arch, backbone, mode and shot\): "
                                         r"wrong shapes \(file vs model\) bias \(2,\) vs \(5,\), weight \(2, 3\) vs \(5, 4\)"):
        load_model_weights(nn.Linear(4, 5), load_checkpoint(str(path)), str(path))
