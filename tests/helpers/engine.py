"""Small end-to-end configurations for the engine tests: the synthetic VOC fixture, a random
ResNet-50 at 65 px, a few episodes per epoch."""
import os

import torch

from engine.choices import load_config
from util.fileio import REPO_ROOT

TINY = """_base_: {repo}/config/base/pascal.yaml
data_root: {root}
train_list: {root}/train.txt
val_list: {root}/val.txt
index_cache_dir: {cache}
train_size: 65
val_size: 65
workers: 0
pretrained: ''
epochs: 1
train_num: 4
batch_size: 2
test_num: 6
test_seeds: [11, 12]
print_freq: 1
device: cpu
exp_dir: {exp}
"""


def write_config(tmp_path, root, cache, name="tiny.yaml", extra=""):
    path = tmp_path / name
    path.write_text(TINY.format(repo=REPO_ROOT, root=root, cache=cache, exp=tmp_path / "exp") + extra)
    return str(path)


def tiny_config(tmp_path, root, cache, *overrides):
    return load_config(write_config(tmp_path, root, cache), list(overrides))


def checkpoint_weights(cfg, name="last.pth"):
    path = os.path.join(cfg.exp_path, "snapshot", name)
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def crash_then_resume(cfg, monkeypatch):
    """Train `cfg` with a crash (KeyboardInterrupt) at the start of its second epoch, then
    resume=auto; returns the resumed run's final state."""
    import pytest

    from engine.trainer import Trainer
    original = Trainer.train_epoch

    def crash_in_second_epoch(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt("simulated crash")
        original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg).fit()
    monkeypatch.setattr(Trainer, "train_epoch", original)
    return Trainer(cfg.replace(resume="auto")).fit()
