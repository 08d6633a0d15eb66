"""What the meta-learners share (baseline, PFENet, BAM, MSANet): the backbone, the projections of
the mid-level features, and a forward split in two so that the frozen part can be reused:

    forward(batch) = decode(encode(batch), size, class_id)
    encode:  the backbone once over the queries and the supports (EpisodeFeatures), plus what
             frozen modules compute from the queries (`frozen_query_outputs`)
    decode:  the projections, each support's cues (`support_cues`), combined over the supports
             (`combine_shots`) and blended with an optional extra support (`head_inputs`), the
             head; every arch defines decode(feats, size, class_id=None, extra=None)
    decode_meta: the meta-learner's own prediction from the same features (BAM, MSANet: the
             meta branch, without the base learner's ensemble)

An extra support (`ExtraSupport`) is one more image with a mask whose cues enter the head with
their own weight: every support-derived cue of the arch (prototype, prior, MSANet's similarity
maps and attention) is computed for it as for a real support, combined over its one shot, and
blended as (1 - weight) x the real supports' + weight x its own. The real supports alone decide
everything else (BAM's shot weights and Gram distance). Test-time adaptation (docs/eft.md) uses
it to add the query with its pseudo mask; model/support_views.py builds its features.
"""
from dataclasses import dataclass

import torch

from model.common import (EpisodeFeatures, SegmentationModel, conv1x1_relu, encode_episode, shot_priors,
                          shot_prototypes)


@dataclass
class ExtraSupport:
    """`features`: EpisodeFeatures of the same queries with one support (built as the arch builds a
    support's, model/support_views.py); `weight`: its cues' weight in [0, 1]."""
    features: EpisodeFeatures
    weight: float


def weighted_over_shots(cue, weights):
    """sum_k weights[:, k] * cue[:, k]: cue [B, K, ...], weights [B, K]."""
    return (weights.view(*weights.shape, *(1,) * (cue.dim() - 2)) * cue).sum(1)


class MetaLearner(SegmentationModel):
    """The backbone, the 1x1 projections (dropout 0.5, as PFENet and BAM) of the query's and the
    supports' mid-level features, encode / decode (module docstring) and the support cues.
    `masked_layer4` and `tap_stages` are passed to encode_episode."""

    masked_layer4 = True
    tap_stages = ()
    # state-dict prefixes that EFT's `eft_params: published` leaves fixed (docs/eft.md)
    published_eft_skips = ()

    def __init__(self, backbone, reduce_dim):
        super().__init__()
        self.backbone = backbone
        mid_dim = backbone.channels["layer2"] + backbone.channels["layer3"]
        self.down_query = conv1x1_relu(mid_dim, reduce_dim, dropout=0.5)
        self.down_supp = conv1x1_relu(mid_dim, reduce_dim, dropout=0.5)

    def forward(self, batch):
        return self.decode(self.encode(batch), batch["query_img"].shape[-2:], batch["class_id"])

    def encode(self, batch):
        """The frozen-able part: backbone features of the episode, and the frozen outputs."""
        feats = encode_episode(self.backbone, batch["query_img"], batch["support_imgs"],
                               batch["support_masks"], self.masked_layer4, self.tap_stages)
        feats.frozen = self.frozen_query_outputs(batch["query_img"], feats.query["layer4"])
        return feats

    def decode_meta(self, feats, size, extra=None):
        """The meta-learner's own prediction [B, 2, *size], without what frozen learners add (BAM
        and MSANet: their ensemble with the base learner, which then needs no frozen outputs)."""
        return self.decode(feats, size, extra=extra)["logits"]

    def frozen_query_outputs(self, images, layer4):
        """What frozen modules compute from query images [N, 3, H, W] (layer4: their backbone's
        layer4) that decode reads from EpisodeFeatures.frozen: nothing here (BAM: base logits)."""
        return {}

    def project(self, feats):
        """(query features [B, C, h, w], support features [B, K, C, h, w])."""
        return self.down_query(feats.query_mid()), feats.per_support(self.down_supp)

    def embed(self, batch):
        """(EpisodeFeatures, query features, support features) of a batch."""
        feats = self.encode(batch)
        return (feats, *self.project(feats))

    def frozen_cues(self, feats):
        """The support cues that depend on the backbone features alone (no trained parameter):
        computed once per EpisodeFeatures and kept in feats.cues, so that decoding the same
        features again reuses them. name -> [B, K, ...]."""
        if not feats.cues:
            feats.cues = self.compute_frozen_cues(feats)
        return feats.cues

    def compute_frozen_cues(self, feats):
        return {"prior": shot_priors(feats)}

    def support_cues(self, feats, supp_feat):
        """Each support's cues for the head, in the head's input order: name -> [B, K, ...]."""
        return {"prototype": shot_prototypes(supp_feat, feats.support_mask), "prior": self.frozen_cues(feats)["prior"]}

    def combine_shots(self, cues, weights=None):
        """The head's inputs after the query features: every cue averaged over the shots
        (weights None, PFENet's and the baseline's k-shot rule) or weighted ([B, K])."""
        if weights is None:
            return [cue.mean(1) for cue in cues.values()]
        return [weighted_over_shots(cue, weights) for cue in cues.values()]

    def head_inputs(self, feats, supp_feat, weights=None, extra=None):
        """combine_shots over the real supports; with an ExtraSupport, each input blended with
        the extra support's own: (1 - extra.weight) x real + extra.weight x extra."""
        inputs = self.combine_shots(self.support_cues(feats, supp_feat), weights)
        if extra is None:
            return inputs
        own = extra.features
        own_supp = own.per_support(self.down_supp)
        alone = self.combine_shots(self.support_cues(own, own_supp), torch.ones(own_supp.shape[:2], device=own_supp.device))
        w = float(extra.weight)
        return [(1 - w) * real + w * mine for real, mine in zip(inputs, alone)]
