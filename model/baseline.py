"""The SVF paper's baseline meta-learner (docs/protocol.md, Meta-learners).

Mid-level features (layer3 + layer2) of query and supports are projected to `reduce_dim`; the
supports give a masked-average-pooled prototype; layer4 gives the training-free prior mask.
Query features, the tiled prototype and the prior are merged by a 1x1 conv, then ASPP, a 1x1
reduction, two residual 3x3 convs and a 2-way classifier. With K shots the priors and the
prototypes are averaged over the shots.
"""
import torch
import torch.nn as nn

from model.common import (ASPP, backbone_from_config, classifier, conv1x1_relu, resize, residual_convs,
                          segmentation_loss)
from model.meta_learner import MetaLearner


class MetaHead(nn.Module):
    """query features and the support cues -> 2-way logits at feature resolution.

    The inputs are concatenated in the order given (a [B, C, 1, 1] prototype is tiled over the
    query grid): [query, prototype, prior] = 2 x reduce_dim + 1 channels for the baseline and
    BAM (the default `in_dim`); MSANet passes more cues and sets `in_dim`."""

    def __init__(self, reduce_dim, in_dim=None):
        super().__init__()
        self.init_merge = conv1x1_relu(in_dim or 2 * reduce_dim + 1, reduce_dim)
        self.aspp = ASPP(reduce_dim)
        self.res1 = conv1x1_relu(5 * reduce_dim, reduce_dim)
        self.res2 = residual_convs(reduce_dim)
        self.cls = classifier(reduce_dim, 2)

    def forward(self, query_feat, *cues):
        size = query_feat.shape[-2:]
        merged = self.init_merge(torch.cat([query_feat] + [c.expand(-1, -1, *size) for c in cues], 1))
        x = self.res1(self.aspp(merged))
        x = self.res2(x) + x
        return self.cls(x)


class Baseline(MetaLearner):
    def __init__(self, backbone, shot=1, reduce_dim=256):
        super().__init__(backbone, reduce_dim)
        self.shot = shot
        self.head = MetaHead(reduce_dim)

    def decode(self, feats, size, class_id=None, extra=None):
        """EpisodeFeatures -> outputs at `size` (model/meta_learner.py); prototype and prior
        averaged over the shots, blended with an extra support's when given."""
        query_feat, supp_feat = self.project(feats)
        logits = self.head(query_feat, *self.head_inputs(feats, supp_feat, extra=extra))
        return {"logits": resize(logits, size)}

    def loss(self, outputs, batch):
        loss = segmentation_loss(outputs["logits"], batch)
        return loss, {"loss": loss.detach()}


def build_baseline(cfg, fold, load_weights=True):
    """arch baseline: backbone `cfg.backbone`, `cfg.shot`, `cfg.reduce_dim`."""
    return Baseline(backbone_from_config(cfg, load_weights), shot=cfg.shot, reduce_dim=cfg.reduce_dim)
