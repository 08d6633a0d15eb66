"""Episodes rebuilt from features already computed. When an image changes role - the query
becomes a support under a new mask, a support becomes the query - its frozen backbone features
are reused, and only what depends on the role runs again: layer4 on the newly masked layer3
features when the arch masks before layer4 (PFENet, BAM, the baseline), layer4 on the whole
image for a support becoming the query, and the frozen query outputs (BAM's base learner).
Test-time adaptation (engine/eft.py, docs/eft.md) builds its views with these, for
MetaLearner.decode and its ExtraSupport.

A `Part` holds N images in one role, every tensor with a leading N: stage outputs and taps and,
for a support, its masks (at layer3's size and, binary, at the input resolution); for a query,
what frozen modules computed from it (EpisodeFeatures.frozen)."""
from dataclasses import dataclass, field

import torch

from model.common import EpisodeFeatures, mid_level, resize

# what decode reads of a support's stages (MSANet's taps are kept whole)
SUPPORT_STAGES = ("layer2", "layer3", "layer4")


@dataclass
class Part:
    stages: dict
    taps: dict
    frozen: dict = field(default_factory=dict)
    mask: torch.Tensor = None        # [N, 1, h3, w3], supports only
    mask_full: torch.Tensor = None   # [N, H, W] binary float, supports only

    def map(self, fn):
        """This part with fn applied to every tensor (each with the leading N)."""
        def apply(t):
            return None if t is None else fn(t)
        return Part({n: fn(f) for n, f in self.stages.items()}, {n: [fn(t) for t in ts] for n, ts in self.taps.items()},
                    {n: fn(f) for n, f in self.frozen.items()}, apply(self.mask), apply(self.mask_full))

    def repeated(self, n):
        """This one image n times (broadcast, not copied)."""
        return self.map(lambda t: t.expand(n, *t.shape[1:]))

    def select(self, start, stop):
        """Images start..stop-1 of this part."""
        return self.map(lambda t: t[start:stop])


def query_part(feats):
    """The queries of an encoding (MetaLearner.encode) in the query's role."""
    return Part(feats.query, feats.query_taps, feats.frozen)


def support_part(feats):
    """The K supports of a one-episode encoding (B = 1) in the support's role, as N = K images."""
    return Part({n: f[0] for n, f in feats.support.items()},
                {n: [t[0] for t in ts] for n, ts in feats.support_taps.items()},
                mask=feats.support_mask[0], mask_full=feats.support_mask_full[0])


def _layer4(model, stages, taps, layer3):
    """stages / taps with layer4 (and its taps, when the arch taps it) run on `layer3`."""
    stages, taps = dict(stages), dict(taps)
    if "layer4" in model.tap_stages:
        stages["layer4"], taps["layer4"] = model.backbone.stage_with_taps("layer4", layer3)
    else:
        stages["layer4"] = model.backbone.layer4(layer3)
    return stages, taps


def supports_as_queries(model, supports, images, frozen=True):
    """`supports` (a support Part) in the query's role: layer4 on the whole image (run again when
    the arch masked it), and the frozen query outputs of `images` [N, 3, H, W] (frozen=False:
    none, for MetaLearner.decode_meta, which reads none)."""
    stages, taps = supports.stages, supports.taps
    if model.masked_layer4:
        stages, taps = _layer4(model, stages, taps, stages["layer3"])
    return Part(stages, taps, model.frozen_query_outputs(images, stages["layer4"]) if frozen else {})


def as_support(model, queries, masks):
    """`queries` (a query Part) in the support's role under binary masks [N, H, W] (float): the
    mask resized to layer3's size as encode_episode does, and layer4 on layer3 x mask when the
    arch masks before layer4."""
    stages, taps = queries.stages, queries.taps
    mask = resize(masks.unsqueeze(1), stages["layer3"].shape[-2:])
    if model.masked_layer4:
        stages, taps = _layer4(model, stages, taps, stages["layer3"] * mask)
    return Part(stages, taps, mask=mask, mask_full=masks)


def episode(query, supports):
    """EpisodeFeatures of N episodes: `query` a Part of N images in the query's role, `supports`
    a list of K Parts of N images each in the support's role."""
    def stack(tensors):
        # one support: a view (a broadcast Part stays uncopied)
        return tensors[0].unsqueeze(1) if len(tensors) == 1 else torch.stack(tensors, 1)
    support = {n: stack([s.stages[n] for s in supports]) for n in SUPPORT_STAGES}
    support_taps = {n: [stack([s.taps[n][i] for s in supports]) for i in range(len(ts))]
                    for n, ts in query.taps.items()}
    return EpisodeFeatures(query.stages, support, stack([s.mask for s in supports]), query.taps,
                           support_taps, stack([s.mask_full for s in supports]), query.frozen)


def shared_supports(queries, supports):
    """EpisodeFeatures of N episodes: `queries` a Part of N images in the query's role, each
    with the same K `supports` (a Part of K images), broadcast, not copied."""
    n = queries.stages["layer3"].shape[0]

    def share(t):
        return t.unsqueeze(0).expand(n, *t.shape)
    return EpisodeFeatures(queries.stages, {s: share(supports.stages[s]) for s in SUPPORT_STAGES},
                           share(supports.mask), queries.taps,
                           {s: [share(t) for t in supports.taps[s]] for s in queries.taps},
                           share(supports.mask_full), queries.frozen)


@dataclass
class SwappedSupports(EpisodeFeatures):
    """The episodes of swapped_supports. Each slot holds one of K + 1 images (the K supports,
    then the lent one), so their mid-level features are kept once per image (`images`
    [K + 1, C, h, w]) with `slots` [K, K] naming the image of each slot: per_support runs its
    module once per image (in eval mode, where the projections treat each image alone). The
    support stages are not built (`support` is empty): decode reads the supports through
    per_support, their masks and the frozen cues, which are given."""
    images: torch.Tensor = None
    slots: torch.Tensor = None

    def per_support(self, fn):
        return fn(self.images)[self.slots]


def swapped_supports(queries, supports, lent, cues):
    """K episodes in one batch: episode i has image i of `queries` as its query and the K
    `supports` with support i replaced by `lent` (one image in the support's role); `cues`
    their frozen cues (name -> [K, K, ...])."""
    k = supports.mask.shape[0]
    rows = torch.arange(k, device=supports.mask.device)
    slots = torch.where(rows[:, None] == rows[None, :], k, rows[None, :])  # slot j of episode i

    def slotted(real, own):
        return torch.cat([real, own])[slots]
    images = torch.cat([mid_level(supports.stages["layer2"], supports.stages["layer3"]),
                        mid_level(lent.stages["layer2"], lent.stages["layer3"])])
    return SwappedSupports(queries.stages, {}, slotted(supports.mask, lent.mask), queries.taps, {},
                           slotted(supports.mask_full, lent.mask_full), queries.frozen, cues, images, slots)


def on_diagonal(cues, own):
    """Cues name -> [K, K, ...] with entry [i, i] taken from own[name] [K, 1, ...]: the frozen
    cues of swapped_supports from those of shared_supports and of the lent image alone."""
    def put(full, mine):
        k = full.shape[0]
        diagonal = torch.eye(k, dtype=torch.bool, device=full.device).view(k, k, *(1,) * (full.dim() - 2))
        return torch.where(diagonal, mine, full)
    return {name: put(cue, own[name]) for name, cue in cues.items()}
