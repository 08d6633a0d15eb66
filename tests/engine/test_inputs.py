"""Every input file is checked before anything is built, and all problems come in one line."""
import os

import pytest

from engine.choices import load_config
from engine.inputs import InputError, check_inputs, input_problems
from engine.trainer import Trainer
from util.fileio import REPO_ROOT


def config(tmp_path, *overrides):
    return load_config(os.path.join(REPO_ROOT, "config", "pascal_split2.yaml"),
                       [f"data_root={tmp_path / 'nowhere'}", f"train_list={tmp_path / 'train.txt'}",
                        f"val_list={tmp_path / 'val.txt'}", *overrides])


def test_all_missing_inputs_in_one_line(tmp_path):
    cfg = config(tmp_path, "arch=bam", "backbone=vgg16", f"pretrained={tmp_path / 'vgg.pth'}",
                 f"base_weight={tmp_path}/PSPNet/{{dataset}}/split{{split}}/{{backbone}}/best.pth")
    with pytest.raises(InputError) as info:
        Trainer(cfg)  # raises before building the model or reading any list
    message = str(info.value)
    assert "\n" not in message
    for part in (f"data_root {tmp_path / 'nowhere'} is not a directory",
                 f"train_list {tmp_path / 'train.txt'} does not exist",
                 f"val_list {tmp_path / 'val.txt'} does not exist",
                 f"pretrained {tmp_path / 'vgg.pth'} does not exist",
                 f"base_weight {tmp_path}/PSPNet/pascal/split2/vgg16/best.pth: bam's base learner is "
                 "missing; train it first with: sh train.sh pascal split2 vgg16 base"):
        assert part in message


def test_testing_needs_only_the_val_data(tmp_path, synthetic_voc, voc_lists):
    cfg = config(tmp_path, f"data_root={synthetic_voc}", f"val_list={voc_lists[1]}", "arch=bam",
                 "pretrained=auto")
    assert input_problems(cfg, training=False) == []  # the checkpoint holds the weights
    assert len(input_problems(cfg, training=True)) == 3  # train list, pretrained, base learner
    check_inputs(cfg.replace(train_list=voc_lists[0], pretrained="", arch="baseline"), training=True)


def test_bam_looks_for_vgg_base_learners_where_bam_puts_them(tmp_path):
    cfg = config(tmp_path, "arch=bam", "backbone=vgg16", "pretrained=")
    missing = [p for p in input_problems(cfg, training=True) if p.startswith("base_weight")]
    assert missing[0].startswith("base_weight initmodel/PSPNet/pascal/split2/vgg/best.pth:")
    resnet = config(tmp_path, "arch=bam", "backbone=resnet101", "pretrained=")
    assert "initmodel/PSPNet/pascal/split2/resnet101/best.pth" in " ".join(input_problems(resnet, training=True))
