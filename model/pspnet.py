"""BAM's base learner (stage 1): PSPNet over the staged backbone (docs/protocol.md, Training).

layer4 features go through a pyramid pooling module (bins 1, 2, 3, 6: each bin average-pools,
projects to in_dim / len(bins) channels with 1x1 conv + BN + ReLU and is upsampled back), are
concatenated with the input, then a 3x3 conv (512) + BN + ReLU + dropout 0.1 and a 1x1
classifier give one logit per base class plus background. Trained with plain pixel-wise
cross-entropy on `query_base_mask` (BAM's PSPNet has no auxiliary head).
"""
from collections import OrderedDict

import torch
import torch.nn as nn

from model.common import SegmentationModel, backbone_from_config, resize, segmentation_loss

PPM_BINS = (1, 2, 3, 6)
HIDDEN_DIM = 512


class PyramidPooling(nn.Module):
    """Input plus one pooled-and-projected map per bin, concatenated along channels."""

    def __init__(self, in_dim, bins=PPM_BINS):
        super().__init__()
        bins = tuple(int(b) for b in bins)
        if not bins or any(b < 1 for b in bins):
            raise ValueError(f"ppm_bins: expected a non-empty list of positive bin counts, got {list(bins)}")
        reduction = in_dim // len(bins)
        self.branches = nn.ModuleList(nn.Sequential(OrderedDict([
            ("pool", nn.AdaptiveAvgPool2d(b)),
            ("conv", nn.Conv2d(in_dim, reduction, 1, bias=False)),
            ("bn", nn.BatchNorm2d(reduction)),
            ("relu", nn.ReLU(inplace=True))])) for b in bins)
        self.out_channels = in_dim + reduction * len(bins)

    def forward(self, x):
        size = x.shape[-2:]
        return torch.cat([x] + [resize(branch(x), size) for branch in self.branches], 1)


class PSPNet(SegmentationModel):
    """Semantic segmentation over `num_classes` (base classes + background).

    batch["query_img"] -> {"logits": [B, num_classes, H, W]} at the input resolution."""

    task = "semantic"

    def __init__(self, backbone, num_classes, bins=PPM_BINS):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"PSPNet needs at least 2 classes (background + one base class), got {num_classes}")
        self.backbone = backbone
        self.num_classes = num_classes
        self.ppm = PyramidPooling(backbone.channels["layer4"], bins)
        self.cls = nn.Sequential(
            nn.Conv2d(self.ppm.out_channels, HIDDEN_DIM, 3, padding=1, bias=False),
            nn.BatchNorm2d(HIDDEN_DIM), nn.ReLU(inplace=True), nn.Dropout2d(p=0.1),
            nn.Conv2d(HIDDEN_DIM, num_classes, 1))

    def encode(self, img):
        """layer4 features of `img` (all five backbone stages)."""
        return self.backbone(img)["layer4"]

    def classify(self, layer4):
        """Class logits at layer4's resolution."""
        return self.cls(self.ppm(layer4))

    def forward(self, batch):
        img = batch["query_img"]
        return {"logits": resize(self.classify(self.encode(img)), img.shape[-2:])}

    def loss(self, outputs, batch):
        loss = segmentation_loss(outputs["logits"], batch, "query_base_mask")
        return loss, {"loss": loss.detach()}


def build_pspnet(cfg, fold, load_weights=True):
    """arch pspnet: backbone `cfg.backbone` (weights `cfg.pretrained`), classes = base + 1."""
    backbone = backbone_from_config(cfg, load_weights)
    return PSPNet(backbone, num_classes=len(fold.base) + 1, bins=tuple(cfg.ppm_bins))
