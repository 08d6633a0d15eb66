"""tools.plot_singular_values: the CSV holds the pretrained and the trained singular values of
every conv (from S or from a merged dense checkpoint), the bars show their change, and the
random initialisation is the one train.py draws."""
import csv
import os

import numpy as np
import pytest
import torch

import svf
from engine.choices import load_config
from model.backbone import build_backbone
from model.registry import build_model
from tools import plot_singular_values as tool
from util.data.folds import get_fold
from util.fileio import REPO_ROOT
from util.seeding import seed_everything

SEED = 5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A resnet50 (random init, seed SEED) whose layer2 S trained: its initial and trained S,
    and checkpoints of it as train.py writes it and merged into dense layers."""
    seed_everything(SEED)
    backbone = build_backbone("resnet50")
    svf.finetune(backbone, "svf", layers=("layer2",))
    initial, final = {}, {}
    with torch.no_grad():
        for name, module in backbone.named_modules():
            if isinstance(module, svf.SVDConv2d):
                initial[name] = module.S.detach().clone().flatten()
                steps = torch.linspace(-0.2, 0.3, module.S.numel()).reshape(module.S.shape)
                module.S.mul_(1 + steps)
                final[name] = module.S.detach().clone().flatten()
    folder = tmp_path_factory.mktemp("ckpt")
    svf_path, dense_path = str(folder / "best.pth"), str(folder / "merged.pth")
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    torch.save({"model": state, "config": {"seed": SEED}, "epoch": 3}, svf_path)
    svf.merge(backbone)
    torch.save(backbone.state_dict(), dense_path)
    return initial, final, svf_path, dense_path


def read_csv(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    values = {}
    for row in rows:
        values.setdefault(row["conv"], []).append(
            (float(row["before"]), float(row["after"]), float(row["change"]), row["kernel"]))
    return values


@pytest.mark.parametrize("which, rtol", [("svf", 1e-6), ("dense", 1e-4)])
def test_csv_holds_before_and_after_of_every_conv(trained, tmp_path, which, rtol):
    initial, final, svf_path, dense_path = trained
    out = str(tmp_path / "out")
    tool.main(["--checkpoint", svf_path if which == "svf" else dense_path, "--backbone",
               "resnet50", "--pretrained", "random", "--seed", str(SEED), "--stages", "layer2",
               "--top", "5", "--out", out])
    values = read_csv(os.path.join(out, "singular_values.csv"))
    assert set(values) == set(initial)  # conv1, conv2, conv3 of 4 blocks and the downsample
    for name, rows in values.items():
        before, after, change, kernels = zip(*rows)
        assert np.allclose(before, initial[name].numpy(), rtol=1e-5)
        assert np.allclose(after, final[name].numpy(), rtol=rtol, atol=1e-6)
        assert np.allclose(change, np.array(after) - np.array(before), atol=1e-6)
        assert set(kernels) == {"3x3" if name.endswith("conv2") else "1x1"}
    assert sorted(os.listdir(out)) == ["layer2_1x1_top5.png", "layer2_3x3_top5.png",
                                       "layer2_last_all.png", "singular_values.csv"]


def test_bars_are_the_changes_and_the_line_the_initial_values(trained):
    initial, final, svf_path, _ = trained
    state, _ = tool.read_checkpoint(svf_path)
    seed_everything(SEED)
    rows = tool.singular_values(build_backbone("resnet50"), state, ["layer2"], svf_path)
    kxk = [r for r in rows if r[1] == "3x3"]
    assert [r[0] for r in kxk] == [f"layer2.{b}.conv2" for b in range(4)]
    assert [r[0] for r in tool.last_pointwise_per_block(rows, "layer2")] == \
        [f"layer2.{b}.conv3" for b in range(4)]
    fig = tool.plot_changes(kxk, 30, "title")
    for ax, (name, _, before, after) in zip(fig.axes, kxk):
        heights = [bar.get_height() for bar in ax.patches]
        assert len(heights) == 30 and ax.get_title() == name
        assert np.allclose(heights, (after - before)[:30].numpy(), atol=1e-6)
    twins = [ax for ax in fig.axes if ax.lines and not ax.patches]  # the right-hand axes
    assert len(twins) == len(kxk)
    assert np.allclose(twins[0].lines[0].get_ydata(), kxk[0][2][:30].numpy())
    assert tuple(fig.get_size_inches()) == (15, 2 * 3.2 + 0.6)


def test_random_is_the_initialisation_train_py_draws():
    cfg = load_config(os.path.join(REPO_ROOT, "config", "pascal_split0.yaml"),
                      ["pretrained=", "mode=freeze", "seed=11"])
    seed_everything(cfg.seed)
    model, _ = build_model(cfg, get_fold("pascal", 0))
    ours = tool.pretrained_backbone("resnet50", "random", 11)
    for name, tensor in model.backbone.state_dict().items():
        assert torch.equal(tensor, ours.state_dict()[name]), name


def test_bad_input_is_one_line(tmp_path, trained):
    with pytest.raises(FileNotFoundError, match="nothing.pth: checkpoint not found"):
        tool.main(["--checkpoint", str(tmp_path / "nothing.pth"), "--backbone", "resnet50",
                   "--out", str(tmp_path)])
    other = str(tmp_path / "other.pth")
    torch.save({"model": {"head.weight": torch.ones(1)}}, other)
    with pytest.raises(ValueError, match=r"no layer2.0.conv1.S nor layer2.0.conv1.weight"):
        tool.main(["--checkpoint", other, "--backbone", "resnet50", "--pretrained", "random",
                   "--stages", "layer2", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="'layer9' is not a stage of resnet50"):
        tool.main(["--checkpoint", trained[2], "--backbone", "resnet50", "--pretrained",
                   "random", "--stages", "layer9", "--out", str(tmp_path)])
