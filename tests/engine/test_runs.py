"""Runs that cannot lie: the run directory is locked and never trained into afresh, checkpoints
are lean and carry the keys that define their model and fold, test and resume refuse another
fold's or another model's checkpoint, nothing non-finite is saved or loaded, and files get
ordinary permissions and strict JSON."""
import glob
import json
import os

import pytest
import torch

from engine.checkpoint import INFERENCE, DivergedError, load_checkpoint, save_checkpoint
from engine.run_dir import RunDir
from engine.tester import run_test
from engine.trainer import Trainer
from tests.helpers.engine import checkpoint_weights, tiny_config
from tools.convert import convert


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory, synthetic_voc, data_cache_dir):
    """A finished 1-epoch freeze run (cheap): its config and snapshot folder."""
    tmp = tmp_path_factory.mktemp("frozen")
    cfg = tiny_config(tmp, synthetic_voc, data_cache_dir, "mode=freeze")
    Trainer(cfg).fit()
    return tmp, cfg


def test_a_second_training_says_who_holds_the_directory(frozen_run):
    _, cfg = frozen_run
    holder = RunDir(cfg.exp_path)
    holder.acquire()
    try:
        with pytest.raises(ValueError, match=rf"{cfg.exp_path} is in use by pid {os.getpid()} on \S+ since "):
            Trainer(cfg.replace(resume="auto"))
    finally:
        holder.release()


def test_a_run_is_never_overwritten_and_resuming_a_finished_run_trains_nothing(frozen_run):
    _, cfg = frozen_run
    before = os.path.getmtime(os.path.join(cfg.exp_path, "snapshot", "last.pth"))
    with pytest.raises(ValueError, match=r"already holds a run .*last.pth\); resume=auto continues it"):
        Trainer(cfg)
    state = Trainer(cfg.replace(resume="auto")).fit()
    assert state["epoch"] == 1 and os.path.getmtime(os.path.join(cfg.exp_path, "snapshot", "last.pth")) == before


def test_temporaries_of_killed_writes_are_removed(frozen_run):
    _, cfg = frozen_run
    junk = os.path.join(cfg.exp_path, "snapshot", ".tmp-abc123last.pth")
    open(junk, "wb").write(b"x" * 1000)
    run = RunDir(cfg.exp_path)
    run.acquire()
    run.release()
    assert not os.path.exists(junk)


def test_resume_refuses_another_folds_checkpoint(frozen_run, tmp_path):
    _, cfg = frozen_run
    other = cfg.replace(split=1, exp_dir=str(tmp_path / "exp"),
                        resume=os.path.join(cfg.exp_path, "snapshot", "last.pth"))
    with pytest.raises(ValueError, match=r"last.pth: belongs to a run with split=0, not 1 "):
        Trainer(other)


def test_test_refuses_another_folds_checkpoint_and_command_line_conflicts(frozen_run):
    _, cfg = frozen_run
    best = os.path.join(cfg.exp_path, "snapshot", "best.pth")
    with pytest.raises(ValueError, match=r"best.pth: trained with split=0 but the config \(replace\(split=...\)\) "
                                         r"has split=1; use that fold's checkpoint"):
        run_test(cfg.replace(weight=best, split=1))
    from engine.choices import load_config
    cli = load_config(cfg.source, ["mode=svf", f"weight={best}"])
    with pytest.raises(ValueError, match=r"best.pth: holds a model with mode='freeze'; the command line asks "
                                         r"for mode='svf'"):
        run_test(cli)


def test_checkpoints_are_lean_and_finite_and_files_are_not_private(frozen_run):
    _, cfg = frozen_run
    last, best = checkpoint_weights(cfg), checkpoint_weights(cfg, "best.pth")
    assert not any(k.startswith("backbone.") and not k.endswith(("running_mean", "running_var",
                                                                 "num_batches_tracked")) for k in last)
    assert any(k.startswith("backbone.layer4") for k in best)
    ckpt = load_checkpoint(os.path.join(cfg.exp_path, "snapshot", "best.pth"))
    assert ckpt["run"]["mode"] == "freeze" and ckpt["run"]["split"] == 0 and ckpt["kind"] == INFERENCE
    umask = os.umask(0)
    os.umask(umask)
    for path in glob.glob(os.path.join(cfg.exp_path, "*", "*")):
        if os.path.isfile(path) and not os.path.basename(path).startswith("events"):
            assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask, path


def test_nan_never_reaches_a_checkpoint_nor_a_record(frozen_run, tmp_path):
    tmp, cfg = frozen_run
    model_state = {"w": torch.tensor([1.0, float("nan")])}
    with pytest.raises(DivergedError, match=r"bad.pth not written: non-finite values in w"):
        save_checkpoint(str(tmp_path / "bad.pth"), INFERENCE, model_state, cfg)
    assert not os.path.exists(tmp_path / "bad.pth")
    torch.save({"model": model_state}, tmp_path / "nan.pth")
    with pytest.raises(ValueError, match=r"nan.pth: holds non-finite weights \(w\); it cannot be used"):
        load_checkpoint(str(tmp_path / "nan.pth"))
    run_test(cfg.replace(test_seeds=[11]))  # 6 episodes: some fold classes have none
    text = open(max(glob.glob(os.path.join(cfg.exp_path, "result", "test_best-*.json")),
                    key=os.path.getmtime)).read()
    record = json.loads(text)
    assert "NaN" not in text and record["warnings"] and "no episode of fold classes" in record["warnings"][0]


def test_a_diverging_run_stops_with_one_line_and_keeps_the_last_good_state(tmp_path, synthetic_voc,
                                                                          data_cache_dir, monkeypatch):
    cfg = tiny_config(tmp_path, synthetic_voc, data_cache_dir, "mode=freeze", "epochs=2")
    original = Trainer.train_epoch

    def nan_in_second_epoch(self, epoch):
        original(self, epoch)
        if epoch == 1:
            with torch.no_grad():
                next(self.model.head.parameters()).fill_(float("nan"))

    monkeypatch.setattr(Trainer, "train_epoch", nan_in_second_epoch)
    with pytest.raises(DivergedError, match=r"last.pth not written: non-finite values in head\."):
        Trainer(cfg).fit()
    ckpt = load_checkpoint(os.path.join(cfg.exp_path, "snapshot", "last.pth"))
    assert ckpt["epoch"] == 1  # the last good state, finite (load_checkpoint checks)


def test_an_absurd_learning_rate_is_caught_before_anything_is_saved(tmp_path, synthetic_voc, data_cache_dir):
    cfg = tiny_config(tmp_path, synthetic_voc, data_cache_dir, "mode=freeze", "base_lr=10000.0", "train_num=6")
    with pytest.raises(DivergedError, match=r"the run diverged at epoch 1, iteration [23] \(loss .*; max_loss "
                                            r"100\); nothing was saved in .*snapshot; lower base_lr"):
        Trainer(cfg).fit()
    assert not glob.glob(os.path.join(cfg.exp_path, "snapshot", "*.pth"))


def test_a_converted_published_file_tests_under_any_mode(frozen_run, tmp_path):
    from tests.model.test_keymap import build, published_file
    tmp, cfg = frozen_run
    published_file(build("pfenet"), "pfenet", tmp_path / "PFENet.pth")
    convert("pfenet", "resnet50", str(tmp_path / "PFENet.pth"), str(tmp_path / "ours.pth"))
    result = run_test(cfg.replace(weight=str(tmp_path / "ours.pth"), reduce_dim=32, test_seeds=[11],
                                  fem_scales=[1.0, 0.5, 0.25, 0.125]))  # config mode: freeze; svf works too
    assert set(result) == {"logits", "all_foreground"}
    svf_cfg = cfg.replace(mode="svf", weight=str(tmp_path / "ours.pth"), reduce_dim=32, test_seeds=[11],
                          fem_scales=[1.0, 0.5, 0.25, 0.125])
    assert run_test(svf_cfg)["logits"]["miou"]["mean"] == result["logits"]["miou"]["mean"]
