"""Every architecture trains through the same engine with SVF; BAM's two stages end to end on
the demo configs (stage 1 writes the base learner where stage 2 looks for it)."""
import os

import pytest

from engine.choices import load_config
from engine.tester import run_test
from engine.trainer import Trainer
from tests.helpers.engine import checkpoint_weights, tiny_config
from util.fileio import REPO_ROOT

SMALL = ["train_size=65", "val_size=65", "workers=0", "epochs=1", "train_num=4", "batch_size=2",
         "test_num=6", "test_seeds=[11]", "device=cpu", "print_freq=1"]


@pytest.mark.parametrize("shot", [1, 5])
def test_pfenet_trains_with_svf(tmp_path, synthetic_voc, data_cache_dir, shot):
    cfg = tiny_config(tmp_path, synthetic_voc, data_cache_dir, "arch=pfenet", "mode=svf", f"shot={shot}",
                      "fem_scales=[1.0,0.5,0.25,0.125]")
    state = Trainer(cfg).fit()
    assert state["iteration"] == 2
    assert any(k.startswith("fem.") for k in checkpoint_weights(cfg))


def demo_config(tmp_path, root, cache, name, *overrides):
    data = [f"data_root={root}", f"train_list={root}/train.txt", f"val_list={root}/val.txt",
            f"index_cache_dir={cache}", f"exp_dir={tmp_path / 'exp'}",
            f"base_weight={tmp_path}/initmodel/PSPNet/{{dataset}}/split{{split}}/{{backbone_folder}}/best.pth"]
    if name.endswith("_base.yaml"):  # stage 1 writes where stage 2 looks
        data.append(f"best_copy={tmp_path}/initmodel/PSPNet/{{dataset}}/split{{split}}/{{backbone_folder}}/best.pth")
    return load_config(os.path.join(REPO_ROOT, "config", name), data + SMALL + list(overrides))


def test_base_learner_then_bam(tmp_path, synthetic_voc, data_cache_dir):
    base = demo_config(tmp_path, synthetic_voc, data_cache_dir, "demo_split0_base.yaml")
    assert (base.arch, base.mode, base.exp_name) == ("pspnet", "full", "demo")
    Trainer(base).fit()
    published = tmp_path / "initmodel" / "PSPNet" / "demo" / "split0" / "resnet50" / "best.pth"
    assert published.is_file()  # where BAM looks
    base_result = run_test(base)
    assert set(base_result) == {"logits"} and 0.0 <= base_result["logits"]["miou"]["mean"] <= 1.0

    bam = demo_config(tmp_path, synthetic_voc, data_cache_dir, "demo_split0.yaml", "arch=bam", "mode=svf")
    Trainer(bam).fit()
    last, best = checkpoint_weights(bam), checkpoint_weights(bam, "best.pth")
    # the frozen base learner is referenced by path and checksum, never stored again
    assert not any(k.startswith("base_learner.") for k in (*last, *best))
    assert any(".S" in k for k in last) and not any(k.endswith((".U", ".V")) for k in last)
    assert not any(k.endswith((".S", ".U", ".V")) for k in best)  # merged back to dense
    result = run_test(bam)
    assert set(result) == {"logits", "logits_meta", "all_foreground"}  # final, meta branch, floor


def test_bam_without_base_learner_names_the_command(tmp_path, synthetic_voc, data_cache_dir):
    bam = demo_config(tmp_path, synthetic_voc, data_cache_dir, "demo_split1.yaml", "arch=bam")
    with pytest.raises(ValueError, match=r"train it first with: sh train.sh demo split1 resnet50 base$"):
        Trainer(bam)
