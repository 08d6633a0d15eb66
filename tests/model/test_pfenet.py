"""PFENet: shapes for 1 and 5 shots, FEM scale sizes as PFENet defines them, its loss, k-shot."""
import pytest
import torch
import torch.nn.functional as F

from model.pfenet import PFENet, build_pfenet, check_scales, scale_size
from tests.helpers.model import PASCAL_FOLD0, frozen_backbone, head_grads, make_batch
from engine.choices import load_config


@pytest.fixture(scope="module")
def backbone():
    return frozen_backbone("resnet50")


@pytest.mark.parametrize("batch_size, shot", [(2, 1), (1, 5)])
def test_forward_loss_and_gradients(backbone, batch_size, shot):
    model = PFENet(backbone, reduce_dim=32).train()
    batch = make_batch(batch_size, shot, size=65)
    outputs = model(batch)
    assert outputs["logits"].shape == (batch_size, 2, 65, 65)  # the input resolution
    # PFENet's scales at any input size: 60, 30, 15, 8 bins
    assert [tuple(outputs[f"aux_logits_{i}"].shape[-2:]) for i in range(4)] == [(60, 60), (30, 30), (15, 15), (8, 8)]
    assert [k for k in outputs if k.startswith("logits")] == ["logits"]  # aux are not scored
    loss, parts = model.loss(outputs, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(parts) == {"loss", "main", "aux"} and not any(p.requires_grad for p in parts.values())
    loss.backward()
    grads = head_grads(model)
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert "fem.0.inter.0.weight" not in grads and "fem.3.inter.0.weight" in grads


def test_scale_sizes_follow_pfenet():
    # Pascal, 473 crop: 60 x 60 features, absolute bins
    assert [scale_size(s, 60, 60) for s in check_scales([60, 30, 15, 8])] == [(60, 60), (30, 30), (15, 15), (8, 8)]
    # COCO, 641 crop: 81 x 81 features, PFENet's fractions truncated
    fractions = check_scales([1.0, 0.5, 0.25, 0.125])
    assert [scale_size(s, 81, 81)[0] for s in fractions] == [81, 40, 20, 10]
    assert scale_size(0.125, 5, 9) == (1, 1)  # never below one bin
    for bad in ([7.5], [0], [-2], []):
        with pytest.raises(ValueError, match="fem_scales"):
            check_scales(bad)


def test_fraction_scales_follow_the_input(backbone):
    model = PFENet(backbone, reduce_dim=16, scales=(1.0, 0.5)).eval()
    outputs = model(make_batch(1, 1, size=81))  # features 11 x 11
    assert outputs["aux_logits_0"].shape[-1] == 11 and outputs["aux_logits_1"].shape[-1] == 5


def test_loss_is_main_plus_weighted_mean_of_scale_losses(backbone):
    model = PFENet(backbone, reduce_dim=16, scales=(1.0, 0.5, 0.25), aux_weight=0.4).eval()
    batch = make_batch(1, 1, size=49)
    with torch.no_grad():
        outputs = model(batch)
        loss, parts = model.loss(outputs, batch)
    target = batch["query_mask"]

    def ce(logits):
        up = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=True)
        return F.cross_entropy(up, target, ignore_index=255)

    aux = sum(ce(outputs[f"aux_logits_{i}"]) for i in range(3)) / 3
    assert torch.allclose(parts["aux"], aux)
    assert torch.allclose(loss, ce(outputs["logits"]) + 0.4 * aux)


def test_k_shot_averages_priors_and_prototypes(backbone):
    """Two copies of the same support give exactly the one-shot answer."""
    model = PFENet(backbone, reduce_dim=16, scales=(1.0, 0.5)).eval()
    one = make_batch(1, 1, size=49, seed=3)
    two = dict(one, support_imgs=one["support_imgs"].repeat(1, 2, 1, 1, 1),
               support_masks=one["support_masks"].repeat(1, 2, 1, 1))
    with torch.no_grad():
        assert torch.allclose(model(one)["logits"], model(two)["logits"], atol=1e-5)


def test_builder_reads_the_config():
    cfg = load_config("config/pascal_split0.yaml",
                      ["arch=pfenet", "pretrained=", "backbone=vgg16", "fem_scales=[1.0,0.5]",
                       "aux_weight=0.5", "reduce_dim=64"])
    model = build_pfenet(cfg, PASCAL_FOLD0)
    assert model.scales == (1.0, 0.5) and model.aux_weight == 0.5 and len(model.fem) == 2
    assert model.down_query[0].in_channels == 512 + 256 and model.down_query[0].out_channels == 64


def test_learnable_parameters_match_the_paper(backbone):
    """PFENet paper: 10.8M learnable parameters with ResNet-50 (reduce_dim 256, four scales)."""
    model = PFENet(backbone)
    learnable = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("backbone."))
    assert round(learnable / 1e6, 1) == 10.8
