"""PFENet (Tian et al., TPAMI 2020): prior mask + multi-scale feature enrichment module (FEM).

Mid-level features of query and supports are projected to `reduce_dim`; the supports give a
masked-average-pooled prototype and layer4 the training-free prior (both averaged over the
shots). The FEM works at several scales, coarse to fine as listed (PFENet: 60, 30, 15, 8):

    at scale i: query pooled to the scale's size, tiled prototype, prior resized
        -> 1x1 merge
        -> (i > 0) + 1x1 over [merged, scale i-1's output resized to this size]  (inter-scale)
        -> + two 3x3 convs                                                   (refine)
        -> auxiliary 2-way classifier (its loss is averaged over the scales)
        -> upsampled to the feature size
    all scales concatenated -> 1x1 -> + two 3x3 convs -> 2-way classifier.

Scale sizes (`fem_scales`): a value > 1 is a number of bins (PFENet's 60/30/15/8 at a 473 crop,
where the features are 60 x 60); a value in (0, 1] is a fraction of the feature size, truncated
as PFENet does (PFENet's COCO config: 1.0, 0.5, 0.25, 0.125, i.e. 81/40/20/10 at 641). Bins work
at any input size (pooling to more bins than feature pixels repeats them), fractions follow it.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.common import backbone_from_config, classifier, conv1x1_relu, resize, residual_convs, segmentation_loss
from model.meta_learner import MetaLearner

PFENET_SCALES = (60, 30, 15, 8)


def check_scales(scales):
    """Validate `fem_scales`; returns them as a tuple of floats."""
    scales = tuple(float(s) for s in scales)
    if not scales:
        raise ValueError("fem_scales: expected at least one scale")
    for s in scales:
        if not (0 < s <= 1 or (s > 1 and s.is_integer())):
            raise ValueError(f"fem_scales: {s!r} is neither a fraction of the feature size in (0, 1] "
                             "nor a whole number of bins")
    return scales


def scale_size(scale, height, width):
    """(h, w) of one FEM scale for features of size height x width."""
    if scale > 1:
        return int(scale), int(scale)
    return max(1, int(height * scale)), max(1, int(width * scale))


class ScaleBranch(nn.Module):
    """One FEM scale: merge, inter-scale merge (not on the first scale), refine, aux classifier."""

    def __init__(self, dim, first):
        super().__init__()
        self.merge = conv1x1_relu(2 * dim + 1, dim)
        self.inter = None if first else conv1x1_relu(2 * dim, dim)
        self.refine = residual_convs(dim)
        self.aux_cls = classifier(dim, 2)

    def forward(self, query_feat, prototype, prior, size, previous):
        """Returns (features at `size`, aux logits at `size`); `previous` is the preceding
        scale's output at the full feature size, or None for the first scale."""
        pooled = F.adaptive_avg_pool2d(query_feat, size)
        x = self.merge(torch.cat([pooled, prototype.expand(-1, -1, *size), resize(prior, size)], 1))
        if self.inter is not None:
            x = self.inter(torch.cat([x, resize(previous, size)], 1)) + x
        x = self.refine(x) + x
        return x, self.aux_cls(x)


class PFENet(MetaLearner):
    """batch -> {"logits": final 2-way logits, "aux_logits_<i>": scale i's aux logits}.

    Logits are at the input resolution; the aux logits stay at their scale's size (the loss
    upsamples them) and do not start with "logits", so the evaluator ignores them."""

    def __init__(self, backbone, reduce_dim=256, scales=PFENET_SCALES, aux_weight=1.0):
        if aux_weight < 0:
            raise ValueError(f"aux_weight: expected a non-negative weight, got {aux_weight!r}")
        super().__init__(backbone, reduce_dim)
        self.scales = check_scales(scales)
        self.aux_weight = float(aux_weight)
        self.fem = nn.ModuleList(ScaleBranch(reduce_dim, first=(i == 0)) for i in range(len(self.scales)))
        self.res1 = conv1x1_relu(len(self.scales) * reduce_dim, reduce_dim)
        self.res2 = residual_convs(reduce_dim)
        self.cls = classifier(reduce_dim, 2)

    def decode(self, feats, size, class_id=None, extra=None):
        """EpisodeFeatures -> outputs (model/meta_learner.py); prototype and prior averaged over
        the shots, blended with an extra support's when given."""
        image_size = size  # `size` names each scale's size below
        query_feat, supp_feat = self.project(feats)
        prototype, prior = self.head_inputs(feats, supp_feat, extra=extra)
        height, width = query_feat.shape[-2:]
        prior = resize(prior, (height, width))

        outputs, pyramid = {}, []
        for i, (branch, scale) in enumerate(zip(self.fem, self.scales)):
            size = scale_size(scale, height, width)
            x, aux = branch(query_feat, prototype, prior, size, pyramid[-1] if pyramid else None)
            outputs[f"aux_logits_{i}"] = aux
            pyramid.append(resize(x, (height, width)))
        x = self.res1(torch.cat(pyramid, 1))
        x = self.res2(x) + x
        outputs["logits"] = resize(self.cls(x), image_size)
        return outputs

    def loss(self, outputs, batch):
        """Cross-entropy of the final logits + aux_weight x the mean over scales of each
        scale's cross-entropy (aux logits upsampled to the label's size), as PFENet."""
        size = batch["query_mask"].shape[-2:]
        main = segmentation_loss(outputs["logits"], batch)
        aux = sum(segmentation_loss(resize(outputs[f"aux_logits_{i}"], size), batch)
                  for i in range(len(self.scales))) / len(self.scales)
        loss = main + self.aux_weight * aux
        return loss, {"loss": loss.detach(), "main": main.detach(), "aux": aux.detach()}


def build_pfenet(cfg, fold, load_weights=True):
    """arch pfenet: backbone `cfg.backbone`, FEM scales `cfg.fem_scales`, `cfg.aux_weight`."""
    backbone = backbone_from_config(cfg, load_weights)
    return PFENet(backbone, reduce_dim=cfg.reduce_dim, scales=tuple(cfg.fem_scales),
                  aux_weight=cfg.aux_weight)
