"""Published PFENet / BAM / BAM-PSPNet / MSANet checkpoints: the key mapping, strict round trips
with identical outputs, and the `python -m tools.convert` command."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from model.backbone import build_backbone
from model.bam import BAM
from model.keymap import HEAD_RULES, Rule, convert_state_dict, stage_children, upstream_state_dict
from model.msanet import MSANet
from tools.convert import main as convert_main
from util.cli import run_main
from model.pfenet import PFENet
from model.pspnet import PSPNet
from model.weights import load_weights, read_weights
from tests.helpers.model import PASCAL_FOLD0_BASE, make_batch, randomise
from tests.model import upstream_msanet as upstream
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


# MSANet: the upstream state dict comes from an independent description (tests/model/upstream_msanet.py);
# every tensor must land where the description says, and every module must compute what upstream's does.
def msanet(backbone, shot, dim=32):
    return MSANet(PSPNet(build_backbone(backbone), num_classes=16), PASCAL_FOLD0_BASE, shot=shot, reduce_dim=dim)


def misplaced(model, backbone, U):
    """What did not land where it belongs: backbone tensors by name (both of our copies), head
    modules by what they compute (model in eval mode)."""
    copies = {"backbone": model.backbone.state_dict(), "base learner": model.base_learner.backbone.state_dict()}
    wrong = [f"{copy}: {key}" for key in upstream.backbone_shapes(backbone) for copy, state in copies.items()
             if not torch.equal(state[upstream.our_backbone_key(backbone, key)], U[key])]
    gen = torch.Generator().manual_seed(1)
    dim, mid = model.down_query[0].out_channels, model.down_query[0].in_channels
    mid_feat, merged, feat = torch.randn(2, mid, 5, 5, generator=gen), torch.randn(1, 3 * dim + 65, 9, 9, generator=gen), \
        torch.randn(2, dim, 6, 6, generator=gen)
    meta, base_map, est = torch.rand(1, 2, 4, 4, generator=gen).softmax(1), torch.rand(1, 1, 4, 4, generator=gen), torch.rand(1)
    mask = (torch.rand(2, 1, 6, 6, generator=gen) > 0.5).float()
    maps = torch.randn(1, model.similarity_fuse.conv.in_channels, 5, 5, generator=gen)
    layer4 = torch.randn(1, model.backbone.channels["layer4"], 7, 7, generator=gen)
    checks = {
        "down_query": (model.down_query(mid_feat), F.relu(upstream.conv(U, "down_query.0", mid_feat))),
        "down_supp": (model.down_supp(mid_feat), F.relu(upstream.conv(U, "down_supp.0", mid_feat))),
        "meta head": (model.head(merged[:, :dim], merged[:, dim:]), upstream.meta_head(U, merged)),
        "ensemble": (model.ensemble(meta, base_map, est), upstream.ensemble(U, meta, base_map, est.expand_as(base_map))),
        "attention": (model.attention(feat, mask), upstream.attention(U, feat, mask)),
        "similarity fusion": (model.similarity_fuse(maps), upstream.similarity_fuse(U, maps)),
        "base learner": (model.base_learner.classify(layer4), upstream.base_learner(U, layer4))}
    if model.shot > 1:
        distances = torch.rand(2, model.shot, 1, 1, generator=gen)
        checks["shot re-weighting"] = (model.shot_reweight(distances), upstream.shot_reweight(U, distances))
    return wrong + [name for name, (ours, theirs) in checks.items() if not torch.allclose(ours, theirs, atol=1e-6)]


def test_msanet_description_has_the_published_key_and_parameter_counts():
    counts = {(b, s): len(upstream.msanet_shapes(b, s)) for b in ("resnet50", "resnet101", "vgg16") for s in (1, 5)}
    assert counts == {("resnet50", 1): 394, ("resnet50", 5): 398, ("resnet101", 1): 700, ("resnet101", 5): 704,
                      ("vgg16", 1): 155, ("vgg16", 5): 159}
    learnable = sum(torch.Size(shape).numel() for key, shape in upstream.msanet_shapes("resnet50").items()
                    if not key.startswith(("layer", "learner_base.")) and "running" not in key
                    and "num_batches" not in key)
    assert learnable == 5_131_782


@pytest.mark.parametrize("backbone, shot, prefix", [
    ("resnet50", 1, "module."), ("resnet50", 5, ""), ("vgg16", 5, "module."), ("resnet101", 1, "")])
def test_published_msanet_lands_where_it_belongs(tmp_path, backbone, shot, prefix):
    U = upstream.random_state(upstream.msanet_shapes(backbone, shot, dim=32))
    torch.save({"epoch": 33.5, "state_dict": {prefix + k: v for k, v in U.items()}}, tmp_path / "MSANet.pth")
    model = msanet(backbone, shot)
    assert load_weights(model, tmp_path / "MSANet.pth", "msanet") == "upstream"  # strict
    with torch.no_grad():
        assert misplaced(model.eval(), backbone, U) == []
    assert sorted(upstream_state_dict("msanet", model.state_dict(), stage_children(model.backbone))) == sorted(U)


@pytest.mark.parametrize("swap, caught", [
    ((Rule("ASPP_meta.layer6_2.0.", "head.aspp.branches.2."), Rule("ASPP_meta.layer6_3.0.", "head.aspp.branches.1.")),
     ["meta head"]),
    ((Rule("down_query.", "down_supp."), Rule("down_supp.", "down_query.")), ["down_query", "down_supp"])])
def test_a_wrong_one_to_one_rule_is_caught(tmp_path, monkeypatch, swap, caught):
    monkeypatch.setitem(HEAD_RULES, "msanet", swap + HEAD_RULES["msanet"])  # the first matching rule wins
    U = upstream.random_state(upstream.msanet_shapes("vgg16", 1, dim=32))
    torch.save({"state_dict": U}, tmp_path / "MSANet.pth")
    model = msanet("vgg16", 1)
    load_weights(model, tmp_path / "MSANet.pth", "msanet")  # same shapes: loads without complaint
    with torch.no_grad():
        assert misplaced(model.eval(), "vgg16", U) == caught


def test_convert_command_for_msanet(tmp_path, capsys):
    U = upstream.random_state(upstream.msanet_shapes("vgg16", 5, dim=32))
    torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in U.items()}}, tmp_path / "vgg_5_0.pth")
    assert convert_main(["--arch", "msanet", "--backbone", "vgg16", str(tmp_path / "vgg_5_0.pth"),
                         str(tmp_path / "ours.pth")]) == 0
    out = capsys.readouterr().out
    assert "loads strictly" in out
    assert "msanet_sorted_shot_weights=true msanet_last_shot_fine_maps=true" in out
    model = msanet("vgg16", 5)
    load_model_weights(model, load_checkpoint(str(tmp_path / "ours.pth")), "ours.pth")
    with torch.no_grad():
        assert misplaced(model.eval(), "vgg16", U) == []
