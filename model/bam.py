"""BAM (Lang et al., CVPR 2022): the baseline's meta branch, a frozen base learner and their
ensemble weighted by a Gram-matrix distance (docs/protocol.md, Meta-learners).

    meta branch:  query / support mid-level features -> projections, prototype and prior
                  (weighted over the shots) -> MetaHead -> 2-way logits ("logits_meta")
    base learner: a PSPNet trained on the base classes (stage 1), always frozen, in eval mode
                  and dense; its probabilities of every base class except background are
                  summed into a "base object" map (during training the episode's own class
                  is left out: it is a base class there, and the meta branch must find it)
    Gram distance: || G(query layer2) - G(support layer2) ||_F / C, G the channel Gram matrix
                  of the cosine-normalised features; with k > 1 shots a small network over the
                  sorted distances weights the shots (softmax), which also weights priors and
                  prototypes
    ensemble:     bg = gram_merge(meta bg, distance), fg = gram_merge(meta fg, distance),
                  bg = cls_merge(bg, base map); "logits" = [bg, fg]

The meta backbone starts as a copy of the base learner's backbone (BAM shares them). When the
fine-tuning mode trains nothing in it (mode freeze), build_model calls backbone_frozen and the
two become one module and one pass; otherwise the base learner keeps its own dense copy,
because the fine-tuning mode acts on `model.backbone` only.
"""
import copy
import os

import torch
import torch.nn as nn

from model.backbone import build_backbone, fill_path
from model.baseline import MetaHead
from model.common import resize, segmentation_loss
from model.meta_learner import MetaLearner
from model.pspnet import PSPNet
from model.weights import load_weights as load_weights_into

GRAM_EPS = 1e-7


def gram_matrix(feat):
    """[N, C, h, w] -> [N, C, C]: inner products of the channels divided by their norms."""
    flat = feat.flatten(2)
    norm = flat.norm(dim=2, keepdim=True)
    return torch.bmm(flat, flat.transpose(1, 2)) / (torch.bmm(norm, norm.transpose(1, 2)) + GRAM_EPS)


def identity_merge():
    """1x1 conv 2 -> 1 without bias starting as "take the first input" (weights 1, 0)."""
    conv = nn.Conv2d(2, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 0.0]).view_as(conv.weight))
    return conv


def shot_reweighting(shot, trans_dim):
    """BAM's k-shot re-weighting over the sorted distances: a 1x1 conv shot -> shot starting
    at 1/shot (trans_dim 0), or 1x1 shot -> trans_dim, ReLU, 1x1 trans_dim -> shot."""
    if trans_dim == 0:
        conv = nn.Conv2d(shot, shot, 1, bias=False)
        nn.init.constant_(conv.weight, 1.0 / shot)
        return conv
    return nn.Sequential(nn.Conv2d(shot, trans_dim, 1), nn.ReLU(inplace=True), nn.Conv2d(trans_dim, shot, 1))


class BAM(MetaLearner):
    """batch -> {"logits": ensemble, "logits_meta": meta branch, "base_logits": base learner's
    [B, base classes + 1, H, W]}, all at the input resolution.

    Subclasses (MSANet) add support cues through `support_cues` / `combine_shots` and size the
    head's input with `head_in_dim`. class_id is read in training only (base_object_map)."""

    gram_at_layer3_size = True  # BAM resizes VGG's layer2 to layer3's size before the Gram matrix

    referenced_parts = {"base_learner.": "base_weight"}

    def __init__(self, base_learner, base_classes, shot=1, reduce_dim=256, kshot_trans_dim=2,
                 aux_weight=1.0, head_in_dim=None):
        base_classes = tuple(int(c) for c in base_classes)
        if base_learner.num_classes != len(base_classes) + 1:
            raise ValueError(f"the base learner predicts {base_learner.num_classes} classes; the fold "
                             f"has {len(base_classes)} base classes + background")
        if kshot_trans_dim < 0:
            raise ValueError(f"kshot_trans_dim: expected 0 or a positive width, got {kshot_trans_dim!r}")
        if aux_weight < 0:
            raise ValueError(f"aux_weight: expected a non-negative weight, got {aux_weight!r}")
        # The meta backbone starts trainable, like any freshly built one (the fine-tuning mode
        # then decides).
        super().__init__(copy.deepcopy(base_learner.backbone).requires_grad_(True), reduce_dim)
        self.base_learner = base_learner.requires_grad_(False).eval()
        self.shot = shot
        self.aux_weight = float(aux_weight)
        self.head = MetaHead(reduce_dim, head_in_dim)
        self.gram_merge = identity_merge()
        self.cls_merge = identity_merge()
        self.shot_reweight = shot_reweighting(shot, kshot_trans_dim) if shot > 1 else None
        # dataset class id -> its channel in the base learner's output (0: not a base class)
        channel = torch.zeros(max(base_classes) + 1, dtype=torch.long)
        channel[list(base_classes)] = torch.arange(1, len(base_classes) + 1)
        self.register_buffer("base_channel", channel, persistent=False)

    @property
    def shares_backbone(self):
        return self.backbone is self.base_learner.backbone

    def backbone_frozen(self):
        """Nothing trains in the meta backbone: it is the base learner's, so use that one."""
        self.backbone = self.base_learner.backbone

    def train(self, mode=True):
        """The base learner stays in eval mode whatever the rest does."""
        super().train(mode)
        self.base_learner.eval()
        return self

    def decode(self, feats, size, class_id=None, extra=None):
        """EpisodeFeatures -> outputs at `size` (model/meta_learner.py). An extra support blends
        into the head's cues only; the shot weights and the distance come from the real supports."""
        meta_logits, weights, distance = self.meta_branch(feats, extra)
        base_logits = feats.frozen["base_logits"]
        base_map = self.base_object_map(base_logits.softmax(1), class_id)
        est = (weights * distance).sum(1)                         # [B]
        logits = self.ensemble(meta_logits.softmax(1), base_map, est)
        return {"logits": resize(logits, size), "logits_meta": resize(meta_logits, size),
                "base_logits": resize(base_logits, size)}

    def decode_meta(self, feats, size, extra=None):
        """The meta branch's logits alone: no base learner, no ensemble."""
        return resize(self.meta_branch(feats, extra)[0], size)

    def meta_branch(self, feats, extra=None):
        """(meta logits at feature resolution, shot weights [B, K], Gram distances [B, K])."""
        k = feats.support_mask.shape[1]
        if k != self.shot:
            raise ValueError(f"this BAM was built for {self.shot} shot(s) (its re-weighting depends on "
                             f"it); the batch has {k} support images per episode")
        query_feat, supp_feat = self.project(feats)
        distance = self.frozen_cues(feats)["distance"]            # [B, K]
        weights = self.shot_weights(distance)                     # [B, K], sums to 1 (k > 1)
        return self.head(query_feat, *self.head_inputs(feats, supp_feat, weights, extra)), weights, distance

    def frozen_query_outputs(self, images, layer4):
        """The frozen base learner's logits at feature resolution (no gradient)."""
        with torch.no_grad():
            if not self.shares_backbone:
                layer4 = self.base_learner.encode(images)
            return {"base_logits": self.base_learner.classify(layer4)}

    def compute_frozen_cues(self, feats):
        return {**super().compute_frozen_cues(feats), "distance": self.gram_distance(feats)}

    def gram_distance(self, feats):
        """Per shot, the normalised Frobenius distance of the layer2 Gram matrices (layer2 at
        layer3's resolution when `gram_at_layer3_size`, as BAM)."""
        b, k = feats.support_mask.shape[:2]
        query2, supp2 = feats.query["layer2"], feats.support["layer2"].flatten(0, 1)
        if self.gram_at_layer3_size:
            size = feats.query["layer3"].shape[-2:]
            query2, supp2 = resize(query2, size), resize(supp2, size)
        query_gram = gram_matrix(query2)
        supp_gram = gram_matrix(supp2).unflatten(0, (b, k))
        channels = query_gram.shape[-1]
        return (query_gram.unsqueeze(1) - supp_gram).flatten(2).norm(dim=2) / channels

    def shot_weights(self, distance):
        """Ones for one shot; otherwise softmax of the re-weighting network applied to the
        distances in ascending order, put back in shot order."""
        if self.shot_reweight is None:
            return torch.ones_like(distance)
        ordered, order = distance.sort(dim=1, stable=True)
        weights = self.shot_reweight(ordered[:, :, None, None])[:, :, 0, 0]
        return self.in_shot_order(weights, order).softmax(1)

    def in_shot_order(self, weights, order):
        """The re-weighting's outputs, one per sorted distance, put back in shot order."""
        return weights.gather(1, order.argsort(dim=1))

    def base_object_map(self, base_prob, class_id):
        """Sum of the base-class probabilities [B, 1, h, w]; in training the channel of the
        episode's class (a base class there) is left out, as BAM does."""
        if not self.training:
            return base_prob[:, 1:].sum(1, keepdim=True)
        ids = class_id.long().to(base_prob.device)
        known = ids < self.base_channel.numel()
        channel = torch.where(known, self.base_channel[ids.clamp(max=self.base_channel.numel() - 1)], 0)
        classes = torch.arange(base_prob.shape[1], device=base_prob.device)
        keep = (classes[None] != 0) & (classes[None] != channel[:, None])
        return (base_prob * keep[:, :, None, None]).sum(1, keepdim=True)

    def ensemble(self, meta_prob, base_map, est):
        est_map = est.view(-1, 1, 1, 1).expand_as(base_map)
        meta_bg = self.gram_merge(torch.cat([meta_prob[:, :1], est_map], 1))
        meta_fg = self.gram_merge(torch.cat([meta_prob[:, 1:], est_map], 1))
        return torch.cat([self.cls_merge(torch.cat([meta_bg, base_map], 1)), meta_fg], 1)

    def loss(self, outputs, batch):
        """Ensemble cross-entropy + aux_weight x the meta branch's, as BAM. The base learner's
        cross-entropy (frozen: no gradient) is logged as `base` when the batch has
        `query_base_mask`; BAM adds it to the printed total, we keep it out."""
        main = segmentation_loss(outputs["logits"], batch)
        meta = segmentation_loss(outputs["logits_meta"], batch)
        loss = main + self.aux_weight * meta
        parts = {"loss": loss.detach(), "main": main.detach(), "meta": meta.detach()}
        if "query_base_mask" in batch:
            with torch.no_grad():
                parts["base"] = segmentation_loss(outputs["base_logits"], batch, "query_base_mask")
        return loss, parts


def load_base_learner(cfg, fold, load_weights=True):
    """The stage-1 PSPNet from cfg.base_weight (our checkpoint or BAM's published file).
    load_weights=False: the same network, randomly initialised (a BAM checkpoint follows)."""
    base = PSPNet(build_backbone(cfg.backbone), num_classes=len(fold.base) + 1, bins=tuple(cfg.ppm_bins))
    if not load_weights:
        return base
    if not cfg.base_weight:
        raise ValueError(f"base_weight is empty: arch {cfg.arch} needs the base learner's checkpoint "
                         "(default initmodel/PSPNet/{dataset}/split{split}/{backbone}/best.pth)")
    path = fill_path(cfg, "base_weight")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: base learner (BAM's PSPNet) not found; train stage 1 "
                                "(arch pspnet) for this dataset, fold and backbone first")
    load_weights_into(base, path, "pspnet")
    return base


def build_bam(cfg, fold, load_weights=True):
    """arch bam: base learner from cfg.base_weight."""
    return BAM(load_base_learner(cfg, fold, load_weights), fold.base, shot=cfg.shot, reduce_dim=cfg.reduce_dim,
               kshot_trans_dim=cfg.kshot_trans_dim, aux_weight=cfg.aux_weight)
