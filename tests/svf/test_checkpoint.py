"""The compact checkpoint of what trains: round trip, atomic write, clear mismatch errors."""
import os

import pytest
import torch
import torch.nn as nn

import svf

from tests.svf.test_finetune import X, make_tiny


def trained_tiny(mode="svf", **kwargs):
    model = make_tiny()
    svf.finetune(model, mode, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.mul_(1 + torch.rand_like(p))
    return model


def test_round_trip_restores_the_trained_function(tmp_path):
    model = trained_tiny()
    path = svf.save_trainable(nn.DataParallel(model), tmp_path / "sub" / "s.pt")
    saved = torch.load(path, weights_only=True)["params"]
    assert saved and all(k.endswith(".S") and not k.startswith("module.") for k in saved)
    fresh = make_tiny()
    svf.finetune(fresh, "svf")
    svf.load_trainable(fresh, path)
    with torch.no_grad():
        for stage, out in model(X).items():
            assert torch.equal(fresh(X)[stage], out)
    assert os.listdir(tmp_path / "sub") == ["s.pt"]  # no temporary file left behind


def test_overwrite_is_atomic_replace(tmp_path):
    path = tmp_path / "s.pt"
    path.write_bytes(b"old")
    svf.save_trainable(trained_tiny("scale_out"), path)
    fresh = make_tiny()
    svf.finetune(fresh, "scale_out")
    svf.load_trainable(fresh, path)
    assert sorted(os.listdir(tmp_path)) == ["s.pt"]


def test_exp_parametrisation_checkpoint_holds_s_delta(tmp_path):
    path = svf.save_trainable(trained_tiny(param="exp"), tmp_path / "s.pt")
    keys = torch.load(path, weights_only=True)["params"].keys()
    assert keys and all(k.endswith(".S_delta") for k in keys)


@pytest.mark.parametrize("other, message", [
    (dict(mode="scale_out"), "missing layer2.0.0.scale"),
    (dict(mode="svf", layers=("layer2", "layer3")), "not trainable in the model layer4"),
    (dict(mode="svf", rank_ratio=0.5), "wrong shapes (file vs model) layer2.0.0.S (2, 4) vs (2, 2)"),
])
def test_mismatch_names_file_and_keys(tmp_path, other, message):
    path = svf.save_trainable(trained_tiny(), tmp_path / "s.pt")
    model = make_tiny()
    svf.finetune(model, **other)
    with pytest.raises(ValueError) as info:
        svf.load_trainable(model, path)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text
    assert "apply the same svf.finetune call first" in text


def test_foreign_and_missing_files(tmp_path):
    model = trained_tiny()
    plain = tmp_path / "plain.pt"
    torch.save({"layer2.0.0.S": torch.ones(2, 4)}, plain)
    with pytest.raises(ValueError, match="not an svf.save_trainable file"):
        svf.load_trainable(model, plain)
    pickled = tmp_path / "object.pt"
    torch.save({"format": "svf-trainable-1", "params": {}, "obj": nn.ReLU()}, pickled)
    with pytest.raises(ValueError, match="not a readable weights-only torch file"):
        svf.load_trainable(model, pickled)
    with pytest.raises(FileNotFoundError, match="nothing.pt: no such trainable-parameter"):
        svf.load_trainable(model, tmp_path / "nothing.pt")
