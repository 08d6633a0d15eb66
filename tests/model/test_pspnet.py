"""BAM's base learner: PSPNet shapes, its loss on the base-class label, the stage-1 configs."""
import pytest
import torch
import torch.nn.functional as F

from model.pspnet import PSPNet, build_pspnet
from tests.helpers.model import PASCAL_FOLD0, frozen_backbone, make_batch
from util.data.folds import get_fold
from engine.choices import load_config


@pytest.mark.parametrize("name, ppm_channels", [("resnet50", 2048 + 4 * 512), ("vgg16", 512 + 4 * 128)])
def test_forward_loss_and_pyramid_pooling(name, ppm_channels):
    model = PSPNet(frozen_backbone(name), num_classes=16).train()
    assert model.task == "semantic" and model.num_classes == 16
    assert model.ppm.out_channels == ppm_channels and len(model.ppm.branches) == 4
    assert [b.pool.output_size for b in model.ppm.branches] == [1, 2, 3, 6]
    batch = make_batch(2, size=49)
    del batch["support_imgs"], batch["support_masks"]  # the base-learner dataset has none
    outputs = model(batch)
    assert list(outputs) == ["logits"] and outputs["logits"].shape == (2, 16, 49, 49)
    loss, parts = model.loss(outputs, batch)
    expected = F.cross_entropy(outputs["logits"], batch["query_base_mask"], ignore_index=255)
    assert torch.allclose(loss, expected) and set(parts) == {"loss"}
    loss.backward()
    assert model.cls[4].weight.grad is not None and model.ppm.branches[0].conv.weight.grad is not None


def test_builder_counts_base_classes_plus_background():
    cfg = load_config("config/coco_split1_base.yaml", ["pretrained=", "backbone=vgg16"])
    coco_fold = get_fold("coco", 1)
    assert build_pspnet(cfg, coco_fold).num_classes == 61
    cfg = load_config("config/pascal_split0_base.yaml", ["pretrained=", "backbone=vgg16", "ppm_bins=[1,3]"])
    model = build_pspnet(cfg, PASCAL_FOLD0)
    assert model.num_classes == 16 and [b.pool.output_size for b in model.ppm.branches] == [1, 3]
    with pytest.raises(ValueError, match="ppm_bins"):
        PSPNet(frozen_backbone("vgg16"), 16, bins=())


@pytest.mark.parametrize("dataset, epochs, backbone_mult", [("pascal", 100, 1.0), ("coco", 20, 10.0)])
def test_stage_one_configs_follow_bam(dataset, epochs, backbone_mult):
    for split in range(4):
        cfg = load_config(f"config/{dataset}_split{split}_base.yaml")
        assert (cfg.dataset, cfg.split, cfg.arch, cfg.mode, cfg.shot) == (dataset, split, "pspnet", "full", 1)
        assert (cfg.train_size, cfg.train_scale, cfg.batch_size) == (417, [0.5, 2.0], 12)
        assert (cfg.base_lr, cfg.epochs, cfg.schedule, cfg.poly_power) == (2.5e-4, epochs, "poly", 0.9)
        # BAM's index_split: Pascal 0 (backbone x1, head x10), COCO -1 (everything x10)
        assert (cfg.backbone_lr_mult, cfg.head_lr_mult) == (backbone_mult, 10.0)
        assert cfg.fix_bn is False and cfg.filter_novel is False
