"""MSANet (Iqbal et al., 2022): BAM plus two support cues (docs/models.md, MSANet).

    BAM as it is:  projections, prototype and prior weighted over the shots, Gram distance and
                   shot re-weighting, the frozen base learner, the ensemble, the loss
    multi-similarity: per shot, one cosine-similarity map per feature of the backbone's
                   hyper levels (ResNet-50: 4 + 6 + 3 bottlenecks of layer2-4), averaged over
                   the shots and fused by `similarity_fuse` (1x1 conv to 64, BN, ReLU)
    attention (GAM): per shot, a channel gate from the masked support feature times the support
                   feature map, averaged over the shots
    head input:    [query 256 | prototype 256 | similarity 64 | prior 1 | attention 256] = 833

Where it departs from BAM, as published: the supports' layer4 runs on the whole image and is
masked afterwards (the prior sees the masked layer4 features), and the Gram matrices use layer2
at its own resolution. Two defects of the published code are fixed by default and can be
reproduced for its checkpoints (`sorted_shot_weights`, `last_shot_fine_maps`).
"""
from collections import OrderedDict

import torch
import torch.nn as nn

from model.bam import BAM, load_base_learner
from model.meta_learner import weighted_over_shots
from model.msanet_cues import SupportAttention, similarity_maps

SIMILARITY_DIM = 64


class MSANet(BAM):
    """batch -> the outputs of BAM ("logits", "logits_meta", "base_logits").

    sorted_shot_weights: apply the re-weighting's outputs in the order of the sorted distances,
    as the published code does (its gather leaves them sorted), instead of mapping them back to
    their shots. last_shot_fine_maps: take the finest level's similarity maps from the last
    shot instead of the mean over the shots, as the published VGG code does."""

    masked_layer4 = False
    gram_at_layer3_size = False
    # modules the published test-time fine-tuning leaves out of its optimiser (docs/eft.md)
    published_eft_skips = ("attention.", "similarity_fuse.")

    def __init__(self, base_learner, base_classes, shot=1, reduce_dim=256, kshot_trans_dim=2,
                 aux_weight=1.0, sorted_shot_weights=False, last_shot_fine_maps=False):
        head_in_dim = 3 * reduce_dim + SIMILARITY_DIM + 1
        super().__init__(base_learner, base_classes, shot, reduce_dim, kshot_trans_dim, aux_weight, head_in_dim)
        self.hyper_levels = tuple(self.backbone.hyper_levels)
        self.tap_stages = tuple(stage for stage, kind in self.hyper_levels if kind == "taps")
        counts = [self.backbone.tap_count(stage) if kind == "taps" else 1 for stage, kind in self.hyper_levels]
        self.fine_maps = counts[0]
        self.sorted_shot_weights = bool(sorted_shot_weights)
        self.last_shot_fine_maps = bool(last_shot_fine_maps)
        self.attention = SupportAttention(reduce_dim)
        self.similarity_fuse = nn.Sequential(OrderedDict([
            ("conv", nn.Conv2d(sum(counts), SIMILARITY_DIM, 1)),
            ("bn", nn.BatchNorm2d(SIMILARITY_DIM)),
            ("relu", nn.ReLU(inplace=True))]))

    def compute_frozen_cues(self, feats):
        size = tuple(feats.query["layer3"].shape[-2:])
        return {**super().compute_frozen_cues(feats),
                "similarity": similarity_maps(feats, self.hyper_levels, feats.support_mask_full, size)}

    def support_cues(self, feats, supp_feat):
        """Per shot: prototype, similarity maps, prior, attention (the head's order)."""
        bam = super().support_cues(feats, supp_feat)
        masks = feats.support_mask_full
        attention = self.attention(supp_feat.flatten(0, 1), masks.flatten(0, 1).unsqueeze(1))
        return {"prototype": bam["prototype"],
                "similarity": self.frozen_cues(feats)["similarity"],
                "prior": bam["prior"],
                "attention": attention.unflatten(0, masks.shape[:2])}

    def combine_shots(self, cues, weights=None):
        """Prototype and prior weighted over the shots (BAM), similarity maps and attention
        averaged (the similarity maps then fused)."""
        similarity = cues["similarity"].mean(1)
        if self.last_shot_fine_maps:
            fine = self.fine_maps
            similarity = torch.cat([cues["similarity"][:, -1, :fine], similarity[:, fine:]], 1)
        return [weighted_over_shots(cues["prototype"], weights), self.similarity_fuse(similarity),
                weighted_over_shots(cues["prior"], weights), cues["attention"].mean(1)]

    def in_shot_order(self, weights, order):
        if self.sorted_shot_weights:
            return weights
        return super().in_shot_order(weights, order)


def build_msanet(cfg, fold, load_weights=True):
    """arch msanet: BAM's base learner from cfg.base_weight, the two defect switches."""
    return MSANet(load_base_learner(cfg, fold, load_weights), fold.base, shot=cfg.shot,
                  reduce_dim=cfg.reduce_dim, kshot_trans_dim=cfg.kshot_trans_dim, aux_weight=cfg.aux_weight,
                  sorted_shot_weights=cfg.msanet_sorted_shot_weights,
                  last_shot_fine_maps=cfg.msanet_last_shot_fine_maps)
