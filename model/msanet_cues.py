"""MSANet's two support cues beyond BAM's (docs/models.md, MSANet): the multi-similarity maps
and the attention gate (GAM). Both are computed per shot; MSANet combines them over the shots.

Multi-similarity: for every feature of the backbone's `hyper_levels` (ResNet: each bottleneck
of layer2-4 before its last ReLU; VGG: the convs of layer3 and layer4 and layer4's output), the
cosine similarity of each query pixel with every kept support pixel, clamped at 0 and averaged
over the kept pixels: one map per feature, resized to `out_size`.

Kept support pixels follow the published code: the binary mask is resized (bilinear) to twice
the size of the first level's input, then to that size, then from one feature size to the
next; at each size the support feature is multiplied by the resized mask and a pixel is kept
when its mask value reaches the mean of the positive values (the interior, not the soft rim).
A support without foreground gives maps of 0. Only the kept support pixels enter the products
(gathered first): the rest are zero terms of the mean.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from model.backbone import STAGES
from model.common import channel_norm, packed_positions, resize

SIMILARITY_EPS = 1e-5  # the published code's, in both norms


def level_features(features, levels):
    """(query, support) lists of the level features, fine to coarse: a level (stage, "taps")
    gives the stage's taps, (stage, "output") its output. Layouts as in EpisodeFeatures."""
    query, support = [], []
    for stage, kind in levels:
        if kind == "taps":
            query += features.query_taps[stage]
            support += features.support_taps[stage]
        else:
            query.append(features.query[stage])
            support.append(features.support[stage])
    return query, support


def kept_masks(masks, start, sizes):
    """masks [N, 1, H, W] (0 / 1) -> {size: (mask at size, kept pixels)} along the published
    resize chain: 2 x start, start, then each of `sizes` in order."""
    current = resize(masks, (2 * start[0], 2 * start[1]))
    current = resize(current, start)
    out = {}
    for size in sizes:
        current = resize(current, size)
        if size not in out:
            positive = current > 0
            mean = (current * positive).sum((2, 3), keepdim=True) / positive.sum((2, 3), keepdim=True).clamp(min=1)
            out[size] = (current, positive & (current >= mean))
    return out


def gather_columns(support, index):
    """support [B, K, C, L], index [B, K, M] -> [B, K, C, M]."""
    return support.gather(3, index.unsqueeze(2).expand(-1, -1, support.shape[2], -1))


def _mean_clamped_cosine(query, support, valid, count):
    """query [B, C, Lq], support [B, K, C, M] (the kept pixels, already times the mask), valid
    [B, K, 1, M], count [B, K, 1] -> [B, K, Lq]: the mean over valid support pixels of
    max(0, cosine)."""
    query = query / (channel_norm(query, 1) + SIMILARITY_EPS)
    support = support / (channel_norm(support, 2) + SIMILARITY_EPS) * valid
    b, k, c, m = support.shape
    # one product for all shots: [B, Lq, C] x [B, C, K * M]
    sims = torch.bmm(query.transpose(1, 2), support.transpose(1, 2).reshape(b, c, k * m))
    return sims.view(b, -1, k, m).clamp(min=0).sum(3).transpose(1, 2) / count


def similarity_maps(features, levels, support_masks, out_size):
    """The multi-similarity maps of every shot, [B, K, maps, *out_size], fine to coarse.

    features: EpisodeFeatures holding the taps of the levels' stages; support_masks: binary
    [B, K, H, W] at the input resolution."""
    query, support = level_features(features, levels)
    b, k = support_masks.shape[:2]
    before_first = STAGES[STAGES.index(levels[0][0]) - 1]
    start = tuple(features.query[before_first].shape[-2:])
    sizes = [tuple(f.shape[-2:]) for f in query]
    masks = kept_masks(support_masks.flatten(0, 1).unsqueeze(1), start, sizes)
    columns = {}
    for size, (mask, kept) in masks.items():
        mask, kept = mask.unflatten(0, (b, k)).flatten(3), kept.unflatten(0, (b, k)).flatten(3)
        index, valid = packed_positions(kept[:, :, 0])
        valid = valid.unsqueeze(2)
        columns[size] = (gather_columns(mask, index), index, valid, kept.sum(-1).clamp(min=1))
    maps = []
    for q, s in zip(query, support):
        mask, index, valid, count = columns[tuple(q.shape[-2:])]
        args = (q.flatten(2), gather_columns(s.flatten(3), index) * mask, valid, count)
        if torch.is_grad_enabled() and (q.requires_grad or s.requires_grad):
            # the [B, Lq, K x M] similarities are recomputed in backward instead of kept
            sim = checkpoint(_mean_clamped_cosine, *args, use_reentrant=False)
        else:
            sim = _mean_clamped_cosine(*args)
        maps.append(resize(sim.reshape(b * k, 1, *q.shape[-2:]), out_size).reshape(b, k, *out_size))
    return torch.stack(maps, 2)


class SupportAttention(nn.Module):
    """MSANet's guided attention module (GAM) on one support feature map.

    The support feature times its mask (nearest-resized) is averaged over all pixels (not over
    the mask's area), passed through 1x1 conv, ReLU, 1x1 conv, Dropout(0.5) on the logits and a
    sigmoid; the resulting channel gate multiplies the whole (unmasked) support feature map."""

    def __init__(self, dim, dropout=0.5):
        super().__init__()
        self.gate = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.ReLU(inplace=True), nn.Conv2d(dim, dim, 1),
                                  nn.Dropout(dropout), nn.Sigmoid())

    def forward(self, supp_feat, mask):
        """supp_feat [N, C, h, w], mask [N, 1, H, W] (0 / 1) -> [N, C, h, w]."""
        mask = F.interpolate(mask, size=supp_feat.shape[-2:], mode="nearest")
        return self.gate((supp_feat * mask).mean((2, 3), keepdim=True)) * supp_feat
