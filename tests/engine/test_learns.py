"""Training learns: the baseline trained for a few dozen steps on synthetic data in the real
VOC format segments the novel classes of fold 0 far better than the trivial all-foreground
prediction scored on the same validation episodes. The backbone is a random ResNet-50 kept
frozen (mode=freeze), so what learns is the meta-learner: support cues to query masks."""
import pytest

import engine.trainer as trainer_module
from engine.choices import load_config
from engine.trainer import Trainer
from tools.synthetic import write_voc
from util.fileio import REPO_ROOT

MARGIN = 0.15  # mIoU points (0-1) above the floor; a model that learned nothing scores near it


@pytest.fixture(scope="module")
def small_voc(tmp_path_factory):
    # images about the crop size, so that a crop shows the whole object and its context
    root = str(tmp_path_factory.mktemp("small_voc"))
    write_voc(root, train=240, val=120, min_size=96, max_size=112, seed=0, workers=1)
    return root


def test_training_beats_the_all_foreground_floor(tmp_path, small_voc, monkeypatch):
    cfg = load_config(f"{REPO_ROOT}/config/pascal_split0.yaml", [
        f"data_root={small_voc}", f"train_list={small_voc}/train.txt", f"val_list={small_voc}/val.txt",
        f"index_cache_dir={tmp_path}/cache", f"exp_dir={tmp_path}/exp", "pretrained=", "workers=0",
        "device=cpu", "arch=baseline", "mode=freeze", "train_size=97", "val_size=97", "batch_size=8",
        "train_num=80", "epochs=3", "test_num=40", "print_freq=10"])
    scored = []

    def evaluate(*args, **kwargs):
        scored.append(original(*args, **kwargs)[0])
        return scored[-1], 0.0

    original = trainer_module.evaluate
    monkeypatch.setattr(trainer_module, "evaluate", evaluate)
    Trainer(cfg).fit()
    results = scored[-1]  # the validation after the last epoch
    learned, floor = results["logits"]["miou"], results["all_foreground"]["miou"]
    assert results["logits"]["episodes"] == 40
    assert learned > floor + MARGIN, (learned, floor)
