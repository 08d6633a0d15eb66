"""Published PFENet / BAM / BAM-PSPNet checkpoints: the key mapping, strict round trips with
identical outputs, and the `python -m tools.convert` command."""
import subprocess
import sys

import pytest
import torch

from model.backbone import build_backbone
from model.bam import BAM
from model.keymap import convert_state_dict, stage_children, upstream_state_dict
from tools.convert import main as convert_main
from util.cli import run_main
from model.pfenet import PFENet
from model.pspnet import PSPNet
from model.weights import load_weights, read_weights
from tests.helpers.model import PASCAL_FOLD0_BASE, make_batch, randomise
from engine.checkpoint import load_checkpoint, load_model_weights

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


# The upstream names, written out from the upstream model definitions (not from our modules).
def conv_bn(conv, bn):
    return [f"{conv}.weight"] + [f"{bn}.{k}" for k in BN]


def upstream_resnet_keys(blocks=(3, 4, 6, 3)):
    """PFENet / BAM: layer0 = Sequential(conv1, bn1, relu1, conv2, bn2, relu2, conv3, bn3, relu3, maxpool)."""
    keys = conv_bn("layer0.0", "layer0.1") + conv_bn("layer0.3", "layer0.4") + conv_bn("layer0.6", "layer0.7")
    for stage, count in enumerate(blocks, start=1):
        for block in range(count):
            prefix = f"layer{stage}.{block}"
            for i in (1, 2, 3):
                keys += conv_bn(f"{prefix}.conv{i}", f"{prefix}.bn{i}")
            if block == 0:
                keys += conv_bn(f"{prefix}.downsample.0", f"{prefix}.downsample.1")
    return keys


def upstream_vgg_keys():
    """get_vgg16_layer: stage s = Sequential(features[a:b]), its children re-indexed from 0."""
    bounds = (0, 7, 14, 24, 34, 43)
    keys = []
    for conv in (0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40):
        stage = next(s for s in range(5) if conv < bounds[s + 1])
        j = conv - bounds[stage]
        keys += [f"layer{stage}.{j}.weight", f"layer{stage}.{j}.bias"] + [f"layer{stage}.{j + 1}.{k}" for k in BN]
    return keys


def pfenet_head_keys(scales=4):
    keys = ["down_query.0.weight", "down_supp.0.weight", "res1.0.weight", "res2.0.weight",
            "res2.2.weight", "cls.0.weight", "cls.3.weight", "cls.3.bias"]
    for i in range(scales):
        keys += [f"init_merge.{i}.0.weight", f"beta_conv.{i}.0.weight", f"beta_conv.{i}.2.weight",
                 f"inner_cls.{i}.0.weight", f"inner_cls.{i}.3.weight", f"inner_cls.{i}.3.bias"]
    return keys + [f"alpha_conv.{i}.0.weight" for i in range(scales - 1)]


def pspnet_head_keys(ppm="ppm.", cls="cls."):
    keys = []
    for i in range(4):
        keys += conv_bn(f"{ppm}features.{i}.1", f"{ppm}features.{i}.2")
    return keys + conv_bn(f"{cls}0", f"{cls}1") + [f"{cls}4.weight", f"{cls}4.bias"]


def bam_head_keys(shot, trans_dim):
    keys = ["down_query.0.weight", "down_supp.0.weight", "init_merge.0.weight", "res1_meta.0.weight",
            "res2_meta.0.weight", "res2_meta.2.weight", "cls_meta.0.weight", "cls_meta.3.weight",
            "cls_meta.3.bias", "gram_merge.weight", "cls_merge.weight"]
    keys += [f"ASPP_meta.layer6_{i}.0.{k}" for i in range(5) for k in ("weight", "bias")]
    keys += pspnet_head_keys("learner_base.0.", "learner_base.1.")
    if shot > 1:
        keys += (["kshot_rw.weight"] if trans_dim == 0 else
                 [f"kshot_rw.{i}.{k}" for i in (0, 2) for k in ("weight", "bias")])
    return keys


def build(arch, backbone="resnet50", shot=1, trans_dim=2, seed=0):
    """A model with every tensor random (BAM: its two backbones equal, as upstream has one)."""
    if arch == "pfenet":
        return randomise(PFENet(build_backbone(backbone), reduce_dim=32), seed)
    base = randomise(PSPNet(build_backbone(backbone), num_classes=16), seed)
    if arch == "pspnet":
        return base
    model = BAM(base, PASCAL_FOLD0_BASE, shot=shot, reduce_dim=32, kshot_trans_dim=trans_dim)
    for part in (model.down_query, model.down_supp, model.head, model.gram_merge, model.cls_merge):
        randomise(part, seed + 1)
    return model


def published_file(model, arch, path, duplicates=False):
    """What the upstream training scripts save: {'epoch', 'state_dict'} with DataParallel's
    `module.` prefix; BAM's PSPNet also holds its stages twice (layerN and encoder.N)."""
    upstream = upstream_state_dict(arch, model.state_dict(), stage_children(model.backbone))
    if duplicates:
        upstream.update({"encoder." + k[len("layer"):]: v for k, v in upstream.items() if k.startswith("layer")})
    torch.save({"epoch": 50, "state_dict": {"module." + k: v for k, v in upstream.items()}}, path)
    return upstream


@pytest.mark.parametrize("arch, backbone, shot, trans_dim, expected", [
    ("pfenet", "resnet50", 1, 2, upstream_resnet_keys() + pfenet_head_keys()),
    ("pfenet", "vgg16", 1, 2, upstream_vgg_keys() + pfenet_head_keys()),
    ("pspnet", "resnet50", 1, 2, upstream_resnet_keys() + pspnet_head_keys()),
    ("bam", "resnet50", 5, 2, upstream_resnet_keys() + bam_head_keys(5, 2)),
    ("bam", "vgg16", 5, 0, upstream_vgg_keys() + bam_head_keys(5, 0)),
    ("bam", "vgg16", 1, 2, upstream_vgg_keys() + bam_head_keys(1, 2)),
])
def test_our_modules_carry_exactly_the_published_keys(arch, backbone, shot, trans_dim, expected):
    model = build(arch, backbone, shot, trans_dim)
    upstream = upstream_state_dict(arch, model.state_dict(), stage_children(model.backbone))
    assert len(expected) == len(set(expected))
    assert sorted(upstream) == sorted(expected)


@pytest.mark.parametrize("arch, backbone, shot", [
    ("pfenet", "resnet50", 1), ("pfenet", "vgg16", 5), ("pspnet", "vgg16", 1), ("bam", "resnet50", 5)])
def test_round_trip_loads_strictly_with_identical_outputs(tmp_path, arch, backbone, shot):
    source = build(arch, backbone, shot, seed=0).eval()
    published_file(source, arch, tmp_path / "published.pth", duplicates=(arch == "pspnet"))
    target = build(arch, backbone, shot, seed=7).eval()
    assert load_weights(target, tmp_path / "published.pth", arch) == "upstream"
    batch = make_batch(1, shot, size=41)
    with torch.no_grad():
        expected, actual = source(batch), target(batch)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    if arch == "bam":  # the one upstream backbone filled both of ours
        assert all(torch.equal(v, target.base_learner.backbone.state_dict()[k])
                   for k, v in target.backbone.state_dict().items())


def test_unknown_or_missing_keys_are_one_line_errors(tmp_path):
    model = build("pspnet", "vgg16")
    children = stage_children(model.backbone)
    upstream = upstream_state_dict("pspnet", model.state_dict(), children)
    with pytest.raises(ValueError, match=r"src\.pth: not a published pspnet checkpoint \(keys no pspnet rule "
                                         r"knows: aux\.0\.weight, layer0\.99\.weight - is the backbone right\?\)"):
        convert_state_dict("pspnet", {**upstream, "aux.0.weight": torch.zeros(1), "layer0.99.weight": torch.zeros(1)},
                           children, source="src.pth")
    del upstream["cls.4.bias"]
    torch.save({"state_dict": upstream}, tmp_path / "short.pth")
    with pytest.raises(ValueError, match="missing keys cls.4.bias"):
        load_weights(model, tmp_path / "short.pth", "pspnet")
    # bare state dicts: ours start with backbone., anything else is read as upstream
    torch.save(model.state_dict(), tmp_path / "bare_ours.pth")
    assert read_weights(tmp_path / "bare_ours.pth", "pspnet", model.backbone)[1] == "ours"
    with pytest.raises(FileNotFoundError, match="nowhere.pth: weight file not found"):
        load_weights(model, tmp_path / "nowhere.pth", "pspnet")


def test_convert_command(tmp_path, capsys):
    source = build("bam", "vgg16", shot=5, trans_dim=2).eval()
    published_file(source, "bam", tmp_path / "BAM.pth")
    result = subprocess.run([sys.executable, "-m", "tools.convert", "--arch", "bam", "--backbone", "vgg16",
                             str(tmp_path / "BAM.pth"), str(tmp_path / "ours.pth")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "loads strictly" in result.stdout
    state = load_checkpoint(str(tmp_path / "ours.pth"))
    assert state["arch"] == "bam" and state["backbone"] == "vgg16"
    target = build("bam", "vgg16", shot=5, trans_dim=2, seed=3)
    load_model_weights(target, state, "ours.pth")
    assert all(torch.equal(v, target.state_dict()[k]) for k, v in source.state_dict().items())
    # converting our own file again, a wrong backbone, a missing file: one line, exit 1
    for argv, message in [
            (["--arch", "bam", "--backbone", "vgg16"], "already in this project's format"),
            (["--arch", "bam", "--backbone", "resnet50"], "is the backbone right?"),
            (["--arch", "pfenet", "--backbone", "vgg16"], "keys no pfenet rule knows")]:
        src = tmp_path / ("ours.pth" if "already" in message else "BAM.pth")
        with pytest.raises(SystemExit) as exit_info:
            run_main(convert_main, [*argv, str(src), str(tmp_path / "again.pth")])
        error = str(exit_info.value.code)  # sys.exit(str): printed on stderr, exit status 1
        assert error.startswith("error: ") and message in error and "\n" not in error
    assert not (tmp_path / "again.pth").exists()
