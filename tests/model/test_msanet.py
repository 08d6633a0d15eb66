"""MSANet: shapes for 1 and 5 shots on the three backbones, the similarity maps and their k-shot
average, the attention gate, the two published defects behind their keys, the learnable-parameter
count, a few SVF training iterations through the builder, the configs and the builder's errors."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.checkpoint import INFERENCE, save_checkpoint
from engine.choices import load_config
from model.backbone import build_backbone
from model.common import EpisodeFeatures
from model.msanet import MSANet, build_msanet
from model.msanet_cues import SupportAttention, similarity_maps
from model.pspnet import PSPNet
from model.registry import build_model, learnable_outside_backbone
from tests.helpers.model import PASCAL_FOLD0, PASCAL_FOLD0_BASE, head_grads, make_batch, randomise
from util.config import ConfigError
from util.data.folds import get_fold

MAPS = {"resnet50": 13, "resnet101": 30, "vgg16": 7}  # 4 + 6 + 3, 4 + 23 + 3, 3 + 3 + 1
BASE_LEARNERS = {}


def msanet(backbone="vgg16", shot=1, dim=32, **kwargs):
    if backbone not in BASE_LEARNERS:
        BASE_LEARNERS[backbone] = randomise(PSPNet(build_backbone(backbone), num_classes=16), seed=1)
    return MSANet(BASE_LEARNERS[backbone], PASCAL_FOLD0_BASE, shot=shot, reduce_dim=dim, **kwargs)


@pytest.mark.parametrize("backbone", ["resnet50", "resnet101", "vgg16"])
@pytest.mark.parametrize("shot", [1, 5])
def test_forward_and_loss_shapes(backbone, shot):
    model = msanet(backbone, shot).train()
    model.backbone.requires_grad_(False)  # as under mode freeze: a cheap backward
    batch = make_batch(2 if shot == 1 else 1, shot, size=33)
    outputs = model(batch)
    b = batch["query_img"].shape[0]
    assert outputs["logits"].shape == outputs["logits_meta"].shape == (b, 2, 33, 33)
    assert outputs["base_logits"].shape == (b, 16, 33, 33)
    assert model.similarity_fuse.conv.in_channels == MAPS[backbone]
    assert model.head.init_merge[0].in_channels == 3 * 32 + 64 + 1
    loss, parts = model.loss(outputs, batch)
    assert set(parts) == {"loss", "main", "meta", "base"} and torch.isfinite(loss)
    loss.backward()
    grads = head_grads(model)
    assert all(g is not None for g in grads.values())
    assert any(n.startswith("attention.") for n in grads) and any(n.startswith("similarity_fuse.") for n in grads)


def direct_similarity(query, support, mask):
    """The published rule pixel by pixel: query [C, h, w], support [C, h, w], mask [H, W]
    resized along 2h, h (the level's input size equals the tap size here)."""
    m = F.interpolate(mask[None, None], (2 * query.shape[1],) * 2, mode="bilinear", align_corners=True)
    m = F.interpolate(m, query.shape[1:], mode="bilinear", align_corners=True)[0, 0].flatten()
    s = (support.flatten(1) * m)[:, m >= m[m > 0].mean()]
    s = s / (s.norm(dim=0) + 1e-5)
    q = query.flatten(1) / (query.flatten(1).norm(dim=0) + 1e-5)
    return torch.stack([(q[:, i:i + 1] * s).sum(0).clamp(min=0).mean() for i in range(q.shape[1])]).view(query.shape[1:])


def tap_features(query, supports):
    """EpisodeFeatures holding one tap level (layer2) and layer1 at the same size."""
    b, k = supports.shape[:2]
    zeros = torch.zeros(b, 1, *query.shape[-2:])
    return EpisodeFeatures({"layer1": zeros}, {"layer1": zeros.unsqueeze(1).expand(b, k, -1, -1, -1)},
                           torch.zeros(b, k, 1, 1, 1), {"layer2": [query]}, {"layer2": [supports]})


def test_similarity_maps_follow_the_published_rule():
    gen = torch.Generator().manual_seed(0)
    query, supports = torch.randn(1, 8, 6, 6, generator=gen), torch.randn(1, 2, 8, 6, 6, generator=gen)
    masks = torch.zeros(1, 2, 24, 24)
    masks[0, 0, 5:17, 3:20] = 1
    maps = similarity_maps(tap_features(query, supports), (("layer2", "taps"),), masks, (3, 3))
    assert maps.shape == (1, 2, 1, 3, 3)
    full = similarity_maps(tap_features(query, supports), (("layer2", "taps"),), masks, (6, 6))
    expected = direct_similarity(query[0], supports[0, 0], masks[0, 0])
    assert torch.allclose(full[0, 0, 0], expected, atol=1e-6) and expected.min() >= 0 and expected.max() > 0
    assert torch.equal(full[0, 1], torch.zeros(1, 6, 6))  # a support without foreground
    query.requires_grad_(True)  # training: the similarities are recomputed in backward, same gradients
    similarity_maps(tap_features(query, supports), (("layer2", "taps"),), masks, (6, 6)).sum().backward()
    direct = torch.autograd.grad(direct_similarity(query[0], supports[0, 0], masks[0, 0]).sum(), query)[0]
    assert torch.allclose(query.grad, direct, atol=1e-6) and query.grad.abs().sum() > 0


def test_k_shot_averages_the_similarity_maps_per_shot():
    model = msanet("vgg16", shot=5).eval()
    batch = make_batch(1, 5, size=65, seed=3)
    with torch.no_grad():
        feats, _, supp_feat = model.embed(batch)
        cues = model.support_cues(feats, supp_feat)
        for k in range(5):  # each shot's maps are that support's alone
            one = {**batch, "support_imgs": batch["support_imgs"][:, k:k + 1], "support_masks": batch["support_masks"][:, k:k + 1]}
            feats1, _, supp1 = model.embed(one)
            assert torch.allclose(model.support_cues(feats1, supp1)["similarity"][:, 0], cues["similarity"][:, k], atol=1e-6)
        model.similarity_fuse = nn.Identity()  # the combined maps, before their fusion
        weights = torch.full((1, 5), 0.2)
        assert torch.allclose(model.combine_shots(cues, weights)[1], cues["similarity"].mean(1))
        model.last_shot_fine_maps = True  # the published VGG code: layer3's 3 maps of the last shot
        published = model.combine_shots(cues, weights)[1]
        assert torch.equal(published[:, :3], cues["similarity"][:, -1, :3])
        assert torch.allclose(published[:, 3:], cues["similarity"][:, :, 3:].mean(1))


def combined_cues(model, batch):
    """The head's inputs after the query features, the similarity maps before their fusion."""
    model.similarity_fuse = nn.Identity()
    shots = batch["support_imgs"].shape[1]
    with torch.no_grad():
        feats, _, supp_feat = model.embed(batch)
        return model.combine_shots(model.support_cues(feats, supp_feat), torch.full((1, shots), 1 / shots))


def test_identical_shots_give_the_one_shot_cues():
    one, five = msanet("vgg16", shot=1).eval(), msanet("vgg16", shot=5).eval()
    five.load_state_dict(one.state_dict(), strict=False)  # all but the re-weighting
    batch = make_batch(1, 1, size=65, seed=4)
    repeated = {**batch, "support_imgs": batch["support_imgs"].expand(-1, 5, -1, -1, -1),
                "support_masks": batch["support_masks"].expand(-1, 5, -1, -1)}
    for expected, actual in zip(combined_cues(one, batch), combined_cues(five, repeated)):
        assert (expected - actual).abs().max() <= 1e-5 * expected.abs().max()  # rounding of the batch size


def test_shot_weights_fixed_and_as_published():
    fixed, published = msanet(shot=5), msanet(shot=5, sorted_shot_weights=True)
    published.shot_reweight.load_state_dict(fixed.shot_reweight.state_dict())
    distance = torch.tensor([[0.5, 0.1, 0.4, 0.2, 0.3]])
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert torch.allclose(fixed.shot_weights(distance[:, perm]), fixed.shot_weights(distance)[:, perm])
    # published: the weight computed for the i-th smallest distance goes to shot i
    assert torch.allclose(published.shot_weights(distance), fixed.shot_weights(distance.sort(1)[0]))
    assert torch.equal(published.shot_weights(distance[:, perm]), published.shot_weights(distance))


def test_attention_gate_pools_over_every_pixel():
    gam = SupportAttention(4).eval()
    feat, mask = torch.randn(1, 4, 6, 6), torch.zeros(1, 1, 12, 12)
    mask[..., :6, :] = 1  # the top half after nearest resizing
    pooled = feat[..., :3, :].sum((2, 3), keepdim=True) / 36  # not / 18: the mask's area is ignored
    assert torch.allclose(gam(feat, mask), torch.sigmoid(gam.gate[2](F.relu(gam.gate[0](pooled)))) * feat, atol=1e-6)
    wide, feat = SupportAttention(64).train(), torch.randn(1, 64, 6, 6)
    torch.manual_seed(0)  # 64 gate logits: two equal dropout masks would be a 2**-64 chance
    assert not torch.equal(wide(feat, mask), wide(feat, mask))  # dropout on the gate logits


def test_supports_layer4_runs_on_the_whole_image():
    model = msanet("vgg16").eval()
    batch = make_batch(1, 1, size=49)
    with torch.no_grad():
        feats, _, _ = model.embed(batch)
        whole = model.backbone(batch["support_imgs"][:, 0])["layer4"]
    assert (feats.support["layer4"][:, 0] - whole).abs().max() <= 1e-5 * whole.abs().max()
    assert [len(feats.query_taps[s]) for s in ("layer3", "layer4")] == [3, 3]


def test_learnable_parameters_match_the_published_model():
    """The published ResNet-50 1-shot model: 5,131,782 (BAM's 4,999,174 with its 833-channel
    merge, + 131,584 attention + 1,024 similarity fusion)."""
    counts = {(b, s): learnable_outside_backbone(msanet(b, s, dim=256)) for b, s in
              (("resnet50", 1), ("resnet50", 5), ("resnet101", 1), ("vgg16", 1))}
    print(f"MSANet learnable parameters (backbone and base learner excluded): {counts}")
    assert counts == {("resnet50", 1): 5_131_782, ("resnet50", 5): 5_131_809, ("resnet101", 1): 5_132_870,
                      ("vgg16", 1): 4_738_182}


def msanet_config(tmp_path, *overrides, dataset="pascal"):
    weight = str(tmp_path / "PSPNet" / "{dataset}" / "split{split}" / "{backbone}" / "best.pth")
    return load_config(f"config/{dataset}_split0.yaml", ["arch=msanet", "reduce_dim=32", f"base_weight={weight}",
                                                         *overrides])


@pytest.mark.parametrize("backbone, shot", [("resnet50", 1), ("vgg16", 5)])
def test_a_few_svf_training_iterations(tmp_path, backbone, shot):
    trained = randomise(PSPNet(build_backbone(backbone), num_classes=16), seed=2)
    save_checkpoint(str(tmp_path / f"PSPNet/pascal/split0/{backbone}/best.pth"), INFERENCE, trained.state_dict(),
                    msanet_config(tmp_path))
    model, summary = build_model(msanet_config(tmp_path, "mode=svf", f"backbone={backbone}", f"shot={shot}"),
                                 PASCAL_FOLD0)
    assert f"learnable outside the backbone: {learnable_outside_backbone(model):,} parameters" in str(summary)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in params.items()}
    optimizer = torch.optim.SGD(params.values(), lr=0.01, momentum=0.9)
    model.train()
    for step in range(2):
        batch = make_batch(2, shot, size=33, seed=step)
        loss, _ = model.loss(model(batch), batch)
        optimizer.zero_grad()
        loss.backward()
        assert torch.isfinite(loss)
        reached = {n for n, p in params.items() if p.grad is not None and p.grad.abs().sum() > 0}
        stages = {".".join(n.split(".")[:2]) for n in reached if n.endswith(".S")}  # singular values
        assert stages == {"backbone.layer2", "backbone.layer3", "backbone.layer4"}
        optimizer.step()
    moved = {n for n, p in params.items() if not torch.equal(p, before[n])}
    assert {"attention.gate.0.weight", "similarity_fuse.conv.weight", "head.init_merge.0.weight"} <= moved
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in model.base_learner.state_dict().items())


def test_missing_base_learner_is_a_clear_error(tmp_path):
    cfg = msanet_config(tmp_path, "backbone=resnet101", "split=3")
    with pytest.raises(FileNotFoundError) as info:
        build_msanet(cfg, get_fold("pascal", 3))
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "PSPNet/pascal/split3/resnet101/best.pth"))
    assert "train stage 1" in message
    with pytest.raises(ValueError, match="base_weight is empty: arch msanet needs"):
        build_msanet(cfg.replace(base_weight=""), PASCAL_FOLD0)


@pytest.mark.parametrize("dataset", ["pascal", "coco"])
def test_every_fold_config_serves_msanet(tmp_path, dataset):
    for split in range(4):
        cfg = load_config(f"config/{dataset}_split{split}.yaml", ["arch=msanet", "shot=5"])
        assert (cfg.arch, cfg.split, cfg.msanet_sorted_shot_weights, cfg.msanet_last_shot_fine_maps) == \
            ("msanet", split, False, False)
    published = msanet_config(tmp_path, "msanet_sorted_shot_weights=true", "msanet_last_shot_fine_maps=true",
                              dataset=dataset)
    assert published.msanet_sorted_shot_weights and published.msanet_last_shot_fine_maps
    with pytest.raises(ConfigError, match="msanet_sorted_shot_weights") as info:
        msanet_config(tmp_path, "msanet_sorted_shot_weights=sometimes")
    assert "\n" not in str(info.value)


def test_builder_passes_the_defect_switches(tmp_path):
    trained = randomise(PSPNet(build_backbone("vgg16"), num_classes=16), seed=3)
    save_checkpoint(str(tmp_path / "PSPNet/pascal/split0/vgg16/best.pth"), INFERENCE, trained.state_dict(),
                    msanet_config(tmp_path))
    cfg = msanet_config(tmp_path, "backbone=vgg16", "shot=5", "msanet_sorted_shot_weights=true")
    model = build_msanet(cfg, PASCAL_FOLD0)
    assert model.sorted_shot_weights and not model.last_shot_fine_maps and model.fine_maps == 3
    shared, _ = build_model(cfg.replace(mode="freeze"), PASCAL_FOLD0)
    assert shared.shares_backbone  # one backbone pass under mode freeze, as BAM
