"""train.py's engine end to end on synthetic data: modes, exact resume, a decaying rate, outputs."""
import glob
import os
import re

import pytest
import torch

from engine.trainer import Trainer
from model.registry import build_model
from tests.helpers.engine import checkpoint_weights, crash_then_resume, tiny_config
from util.data.folds import get_fold
from util.seeding import seed_everything


def initial_weights(cfg):
    """The weights training starts from (the trainer seeds before building, so this matches)."""
    seed_everything(cfg.seed)
    model, _ = build_model(cfg, get_fold(cfg.dataset, cfg.split))
    return {k: v.clone() for k, v in model.state_dict().items()}


def changed(before, after):
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.mark.parametrize("mode", ["svf", "freeze", "full"])
def test_training_changes_exactly_what_the_mode_trains(tmp_path, synthetic_voc, data_cache_dir, mode):
    cfg = tiny_config(tmp_path, synthetic_voc, data_cache_dir, f"mode={mode}")
    state = Trainer(cfg).fit()
    assert state["epoch"] == 1 and state["iteration"] == 2
    before, after = initial_weights(cfg), checkpoint_weights(cfg)  # last.pth: what trains + buffers
    model, _ = build_model(cfg, get_fold(cfg.dataset, cfg.split))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n for n, _ in model.named_buffers()}
    assert set(after) == trainable | buffers  # nothing frozen is stored again
    diff = changed({k: before[k] for k in after}, after)
    assert diff == trainable  # every trainable tensor moved, and nothing else (fix_bn: statistics kept)
    backbone = {k for k in diff if k.startswith("backbone.")}
    if mode == "freeze":
        assert backbone == set()
    elif mode == "svf":
        assert backbone and all(k.split(".")[1] in ("layer2", "layer3", "layer4") for k in backbone)
        assert {k.rsplit(".", 1)[1] for k in backbone} == {"S"}  # only singular values move
    else:
        assert {k.split(".")[1] for k in backbone} == {"layer0", "layer1", "layer2", "layer3", "layer4"}
    best = checkpoint_weights(cfg, "best.pth")  # dense: the merged model, frozen parts as they were
    dense, _ = build_model(cfg, get_fold(cfg.dataset, cfg.split), finetune=False)
    assert set(best) == set(dense.state_dict())
    frozen_stage = [k for k in best if k.startswith("backbone.layer0")]
    assert all(torch.equal(best[k], before[k]) for k in frozen_stage) == (mode != "full")
    snapshot, result = (os.path.join(cfg.exp_path, d) for d in ("snapshot", "result"))
    assert sorted(os.listdir(snapshot)) == ["best.pth", "last.pth"]
    files = os.listdir(result)
    assert "config.yaml" in files and any(re.fullmatch(r"train-\d{8}-\d{6}\.log", f) for f in files)
    assert any(f.startswith("events.out.tfevents") for f in files)


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, synthetic_voc, data_cache_dir, monkeypatch):
    whole = tiny_config(tmp_path, synthetic_voc, data_cache_dir, "epochs=2", "exp_dir=" + str(tmp_path / "a"))
    Trainer(whole).fit()
    crashed = tiny_config(tmp_path, synthetic_voc, data_cache_dir, "epochs=2", "exp_dir=" + str(tmp_path / "b"))
    state = crash_then_resume(crashed, monkeypatch)
    assert state["epoch"] == 2 and state["iteration"] == 4
    a, b = checkpoint_weights(whole), checkpoint_weights(crashed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    opt_a, opt_b = (torch.load(os.path.join(c.exp_path, "snapshot", "last.pth"), weights_only=True)["optimizer"]
                    for c in (whole, crashed))
    momentum = [(x["momentum_buffer"], y["momentum_buffer"]) for x, y in
                zip(opt_a["state"].values(), opt_b["state"].values())]
    assert momentum and all(torch.equal(x, y) for x, y in momentum)


def test_learning_rate_decays_every_iteration(tmp_path, synthetic_voc, data_cache_dir):
    cfg = tiny_config(tmp_path, synthetic_voc, data_cache_dir, "epochs=2", "train_num=8", "mode=freeze")
    Trainer(cfg).fit()
    with open(glob.glob(os.path.join(cfg.exp_path, "result", "train-*.log"))[0]) as f:
        rates = [float(m) for m in re.findall(r"\blr ([0-9.e+-]+)", f.read())]
    assert len(rates) == 8
    assert rates[0] == pytest.approx(0.015 * 1.0)  # head_lr_mult 1, first iteration of cosine
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert rates[-1] < 0.1 * rates[0]


@pytest.mark.parametrize("val_every, stop_interval, scores, stop_epoch, best_epoch", [
    (1, 1, [0.5, 0.4, 0.6], 2, 1),        # one epoch without a better mIoU: stop after epoch 2
    (1, 2, [0.5, 0.4, 0.45, 0.6], 3, 1),  # two epochs without: stop after epoch 3
    (1, 2, [0.5, 0.6, 0.4, 0.3], 4, 2),   # improving again resets the count
    (2, 2, [0.5, 0.4, 0.6], 4, 2),        # validated at epochs 2 and 4: 2 epochs without at 4
])
def test_early_stop_counts_epochs_without_a_better_score(tmp_path, synthetic_voc, data_cache_dir, monkeypatch,
                                                         val_every, stop_interval, scores, stop_epoch, best_epoch):
    cfg = tiny_config(tmp_path, synthetic_voc, data_cache_dir, "epochs=6", "mode=freeze", "train_num=2",
                      f"val_every={val_every}", f"stop_interval={stop_interval}")
    sequence = iter(scores)
    monkeypatch.setattr(Trainer, "validate", lambda self, epoch: next(sequence))
    monkeypatch.setattr(Trainer, "train_epoch", lambda self, epoch: None)
    state = Trainer(cfg).fit()
    assert (state["epoch"], state["best_epoch"]) == (stop_epoch, best_epoch)


def test_too_small_training_set_is_a_clear_error(tmp_path, synthetic_voc, data_cache_dir):
    with pytest.raises(ValueError, match=r"^command line: key 'train_num' = 1 is smaller than one batch"):
        tiny_config(tmp_path, synthetic_voc, data_cache_dir, "train_num=1", "batch_size=2")
    cfg = tiny_config(tmp_path, synthetic_voc, data_cache_dir, "train_num=0", "batch_size=400")
    with pytest.raises(ValueError, match=r"train.txt: 145 training samples, fewer than one batch of 400"):
        Trainer(cfg)
