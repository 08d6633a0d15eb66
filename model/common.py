"""Pieces every architecture shares: the model contract, episode encoding, masked average
pooling, the training-free prior mask, ASPP, small conv blocks and the segmentation loss."""
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.backbone import STAGES, build_backbone, pretrained_path
from util.data.folds import IGNORE_LABEL

COSINE_EPS = 1e-7


def backbone_from_config(cfg, load_weights=True):
    """cfg.backbone with the weights of cfg.pretrained (model.backbone.pretrained_path).
    load_weights=False: random init (a full checkpoint is loaded next)."""
    return build_backbone(cfg.backbone, pretrained=pretrained_path(cfg) if load_weights else None)


class SegmentationModel(nn.Module):
    """The contract of every architecture (docs/ARCHITECTURE.md, Models): `backbone` is what the
    fine-tuning mode acts on; `task` is "episodes" (2-way logits per episode) or "semantic"
    (logits over base classes); forward(batch) -> outputs; loss(outputs, batch) -> (loss, parts)."""

    task = "episodes"
    # {state-dict prefix: config key of the file it is loaded from}: frozen parts that
    # checkpoints reference by path and checksum instead of storing them (BAM's base learner)
    referenced_parts = {}

    def backbone_frozen(self):
        """Called by model.registry.build_model when the fine-tuning mode trains nothing in the
        backbone; a model that keeps a second frozen copy of it may share the one module."""


def resize(x, size):
    """Bilinear resize with align_corners=True, as every reference model does."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def conv1x1_relu(cin, cout, dropout=0.0):
    layers = [nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True)]
    if dropout:
        layers.append(nn.Dropout2d(p=dropout))
    return nn.Sequential(*layers)


def residual_convs(dim):
    """Two 3x3 conv + ReLU, added to their input by the caller."""
    return nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.ReLU(inplace=True),
                         nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.ReLU(inplace=True))


def classifier(dim, classes=2):
    return nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.ReLU(inplace=True),
                         nn.Dropout2d(p=0.1), nn.Conv2d(dim, classes, 1))


class ASPP(nn.Module):
    """Image pooling + 1x1 + three dilated 3x3 branches (6, 12, 18), concatenated: 5 x dim."""

    def __init__(self, dim):
        super().__init__()
        self.pool_proj = nn.Conv2d(dim, dim, 1)
        self.branches = nn.ModuleList([nn.Conv2d(dim, dim, 1)] + [
            nn.Conv2d(dim, dim, 3, padding=d, dilation=d) for d in (6, 12, 18)])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        pooled = F.relu(self.pool_proj(x.mean((2, 3), keepdim=True)))
        outs = [pooled.expand(-1, -1, x.shape[2], x.shape[3])]
        outs += [F.relu(branch(x)) for branch in self.branches]
        return torch.cat(outs, 1)


def masked_average_pool(feat, mask):
    """Prototype of `feat` [N, C, h, w] under a soft mask [N, 1, h, w] -> [N, C, 1, 1]."""
    area = mask.sum((2, 3), keepdim=True) + 5e-4
    return (feat * mask).sum((2, 3), keepdim=True) / area


def channel_norm(x, dim):
    """The 2-norm along `dim`, kept, in float32: the root of the sum of squares, which on the CPU
    runs many times faster than Tensor.norm along a dimension that is not the last. The floor
    under the square keeps the gradient of a zero vector's norm at 0 (as Tensor.norm's), not NaN."""
    return x.float().square().sum(dim, keepdim=True).clamp(min=1e-30).sqrt()


def packed_positions(keep):
    """keep [..., L] (bool) -> (index [..., M], valid [..., M]): the kept positions of each row
    first, in order, M the most any row keeps (at least 1); the rest of a row is padded with its
    positions that are not kept (valid False)."""
    most = max(int(keep.sum(-1).max()), 1)
    index = keep.to(torch.uint8).argsort(dim=-1, descending=True, stable=True)[..., :most]
    return index, keep.gather(-1, index)


def prior_mask(query_high, support_high, out_size):
    """Training-free prior of each shot: for every query position the highest cosine
    similarity to any (masked) support position, min-max normalised per query image and shot,
    resized to out_size -> [B, K, 1, *out_size].

    query_high [B, C, h, w], support_high [B, K, C, h', w'] (already multiplied by the mask)."""
    b, k, c = support_high.shape[:3]
    q = query_high.reshape(b, c, -1)
    s = support_high.reshape(b, k, c, -1)
    # a support position whose feature is zero (masked out) is 0 to every query position: only
    # the others enter the product, and 0 joins the max when a shot has such a position
    nonzero = s.ne(0).any(2)                                  # [B, K, L']
    index, _ = packed_positions(nonzero)                      # padding points at zero features
    s = s.gather(3, index.unsqueeze(2).expand(-1, -1, c, -1)).transpose(2, 3).reshape(b, -1, c)
    sim = torch.bmm(s, q) / (torch.bmm(channel_norm(s, 2), channel_norm(q, 1)) + COSINE_EPS)
    sim = sim.view(b, k, -1, q.shape[2]).max(2)[0]           # [B, K, Lq]
    has_zero = nonzero.sum(-1, keepdim=True) < nonzero.shape[-1]
    sim = torch.where(has_zero, sim.clamp(min=0), sim)
    lo, hi = sim.min(2, keepdim=True)[0], sim.max(2, keepdim=True)[0]
    sim = (sim - lo) / (hi - lo + COSINE_EPS)
    return resize(sim.reshape(b * k, 1, *query_high.shape[2:]), out_size).unflatten(0, (b, k))


@dataclass
class EpisodeFeatures:
    """Backbone features of one batch of episodes (B queries, K shots each).

    query: stage name -> [B, C, h, w]; support: stage name -> [B, K, C, h, w] (layer4 computed
    from the masked layer3 features, as PFENet and BAM do, unless encode_episode was told
    otherwise); support_mask: [B, K, 1, h3, w3] binary target masks at layer3's resolution;
    query_taps / support_taps: stage name -> list of tap features (the same layouts) for the
    stages asked for; mid-level = concat(layer3, layer2 resized); support_mask_full: the binary
    target masks [B, K, H, W] at the input resolution; frozen: what frozen modules computed from
    the queries that the model reads later (BAM: the base learner's logits); cues: the support
    cues computed from these features alone, kept by MetaLearner.frozen_cues."""
    query: dict
    support: dict
    support_mask: torch.Tensor
    query_taps: dict = field(default_factory=dict)
    support_taps: dict = field(default_factory=dict)
    support_mask_full: torch.Tensor = None
    frozen: dict = field(default_factory=dict)
    cues: dict = field(default_factory=dict)

    def query_mid(self):
        return mid_level(self.query["layer2"], self.query["layer3"])

    def support_mid(self):
        b, k = self.support_mask.shape[:2]
        return mid_level(self.support["layer2"].flatten(0, 1), self.support["layer3"].flatten(0, 1)).unflatten(0, (b, k))

    def per_support(self, fn):
        """fn, a module that treats each image on its own, on every support's mid-level
        features -> [B, K, ...]."""
        b, k = self.support_mask.shape[:2]
        return fn(self.support_mid().flatten(0, 1)).unflatten(0, (b, k))


def mid_level(feat2, feat3):
    """concat(layer3, layer2), layer2 resized to layer3's size when they differ (VGG)."""
    return torch.cat([feat3, resize(feat2, feat3.shape[-2:])], 1)


def _batchnorm_trains(module):
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in module.modules())


def _run_stage(backbone, name, x, b, k, taps):
    """Stage `name` on x = [B queries, B*K supports]: one call, or, when a BatchNorm of the
    stage is in train mode, one call for the queries and one per shot, so that no image's
    batch statistics mix the query with its supports (PFENet's passes). Returns (out, taps)."""
    def call(part):
        return backbone.stage_with_taps(name, part) if taps else (getattr(backbone, name)(part), [])

    if not _batchnorm_trains(getattr(backbone, name)):
        return call(x)
    shots = x[b:].unflatten(0, (b, k))
    parts = [call(x[:b])] + [call(shots[:, i]) for i in range(k)]

    def join(tensors):  # back to [queries, supports in (B, K) order]
        return torch.cat([tensors[0], torch.stack(tensors[1:], 1).flatten(0, 1)], 0)
    return join([out for out, _ in parts]), [join(list(t)) for t in zip(*(tp for _, tp in parts))]


def encode_episode(backbone, query_img, support_imgs, support_masks, masked_layer4=True, tap_stages=()):
    """Run the backbone once over queries and supports together (separately when its BatchNorm
    trains, see _run_stage). masked_layer4: the supports' layer4 runs on their layer3 features
    times the mask (PFENet, BAM); False: on the whole image (MSANet masks afterwards).
    tap_stages: the stages whose taps are kept as well."""
    b, k = support_imgs.shape[:2]
    x = torch.cat([query_img, support_imgs.flatten(0, 1)], 0)
    mask = (support_masks == 1).float().flatten(0, 1).unsqueeze(1)
    feats, taps = {}, {}
    for name in STAGES:
        if name == "layer4":
            mask = resize(mask, feats["layer3"].shape[-2:])
            if masked_layer4:
                x = torch.cat([x[:b], x[b:] * mask], 0)
        x, stage_taps = _run_stage(backbone, name, x, b, k, name in tap_stages)
        if name in tap_stages:
            taps[name] = stage_taps
        feats[name] = x
    query = {n: f[:b] for n, f in feats.items()}
    support = {n: f[b:].unflatten(0, (b, k)) for n, f in feats.items()}
    query_taps = {n: [t[:b] for t in ts] for n, ts in taps.items()}
    support_taps = {n: [t[b:].unflatten(0, (b, k)) for t in ts] for n, ts in taps.items()}
    return EpisodeFeatures(query, support, mask.unflatten(0, (b, k)), query_taps, support_taps,
                           (support_masks == 1).float())


def shot_priors(features):
    """Prior mask of each shot, [B, K, 1, h3, w3] (layer4 support features masked again)."""
    s4 = features.support["layer4"]
    b, k = s4.shape[:2]
    m = resize(features.support_mask.flatten(0, 1), s4.shape[-2:]).unflatten(0, (b, k))
    return prior_mask(features.query["layer4"], s4 * m, features.query["layer3"].shape[-2:])


def shot_prototypes(support_mid, support_mask):
    """Masked average pooled prototype of each shot, [B, K, C, 1, 1]."""
    b, k = support_mask.shape[:2]
    protos = masked_average_pool(support_mid.flatten(0, 1), support_mask.flatten(0, 1))
    return protos.unflatten(0, (b, k))


# batch key of the engine's pixel counts: {target key: valid pixels of the whole step / processes}
PIXEL_COUNTS = "pixel_counts"


def segmentation_loss(logits, batch, key="query_mask"):
    """Pixel-wise cross-entropy of `logits` against batch[key], 255 ignored: the mean over the
    valid pixels. Under DDP the engine puts the valid pixels of the whole step (over every
    process) divided by the number of processes in batch[PIXEL_COUNTS][key]; dividing the sum
    by it makes the averaged gradients those of one process on the whole batch."""
    target = batch[key].long()
    count = batch.get(PIXEL_COUNTS, {}).get(key)
    if count is None:
        return F.cross_entropy(logits, target, ignore_index=IGNORE_LABEL)
    return F.cross_entropy(logits, target, ignore_index=IGNORE_LABEL, reduction="sum") / count
