"""encode_episode: one backbone pass for queries and supports, except when BatchNorm trains
(fix_bn=false, PFENet's recipe): then the query and every shot get their own batch statistics,
as PFENet's separate passes give them."""
import torch

from model.backbone import build_backbone
from model.common import encode_episode


def episode(seed, shot=2, size=49):
    gen = torch.Generator().manual_seed(seed)
    query = torch.randn(2, 3, size, size, generator=gen)
    supports = torch.randn(2, shot, 3, size, size, generator=gen)
    masks = (torch.rand(2, shot, size, size, generator=gen) > 0.5).long()
    return query, supports, masks


def stage_outputs(backbone, images):
    out = {}
    x = images
    for name in ("layer0", "layer1", "layer2", "layer3"):
        x = getattr(backbone, name)(x)
        out[name] = x
    return out


def test_training_batchnorm_keeps_query_and_shots_apart():
    torch.manual_seed(0)
    backbone = build_backbone("resnet50").train()
    query, supports, masks = episode(1)
    with torch.no_grad():
        feats = encode_episode(backbone, query, supports, masks)
        _, other_supports, other_masks = episode(2)
        other = encode_episode(backbone, query, other_supports, other_masks)
        alone = stage_outputs(backbone, query)
        shot1 = stage_outputs(backbone, supports[:, 1])
    for name in ("layer0", "layer1", "layer2", "layer3"):
        assert torch.equal(feats.query[name], other.query[name])  # the supports change nothing
        torch.testing.assert_close(feats.query[name], alone[name])
        torch.testing.assert_close(feats.support[name][:, 1], shot1[name])


def test_frozen_batchnorm_is_one_pass_with_the_same_result():
    torch.manual_seed(0)
    backbone = build_backbone("resnet50").eval()
    query, supports, masks = episode(3)
    calls = []
    backbone.layer1.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    with torch.no_grad():
        feats = encode_episode(backbone, query, supports, masks)
        alone = stage_outputs(backbone, query)
    assert calls[0] == 2 + 2 * 2  # queries and supports together
    torch.testing.assert_close(feats.query["layer3"], alone["layer3"])
