"""Test-time adaptation of a trained model on each episode (test.py eft=true; docs/eft.md).

Per episode, from the trained weights: the frozen parts run once (MetaLearner.encode: the
backbone over the query and the K supports, BAM's base learner) and round 0 is the plain
prediction. Round r = 1..eft_rounds, with the parameters after r - 1 steps:
    Q2S   the query, under the confident part of the previous round's prediction, joins the
          supports as an ExtraSupport of weight 1 - eft_blend -> the round's prediction
    S2Q   each support is segmented by the query under that mask standing in for it; the mean
          foreground IoU against the supports' own labels scores the round (eft_s2q_output:
          of the meta-learner's own prediction, or of the final one)
    step  one SGD step on the cross-entropy of the Q2S output against the previous round's
          hard labels (not after the last round: its parameters would not be used)
The answer is the round with the best S2Q score (ties: the later), or the last (eft_select).
The query's labels are taken out of the batch before any of this runs; only the oracle
(eft_select=oracle) reads them, to pick the best round afterwards, and it is reported apart.
"""
import torch

from engine.eft_report import RoundCounts, seed_lines, summary_lines, summary_record
from engine.eft_steps import (canvas_mask, confident_mask, foreground_iou, pseudo_labels, pseudo_loss,
                              step_lr)
from model.meta_learner import ExtraSupport
from model.support_views import (as_support, episode, on_diagonal, query_part, shared_supports, support_part,
                                 supports_as_queries, swapped_supports)

EFT_PARAMS = ("head", "published")
EFT_SELECT = ("s2q", "last", "oracle")
EFT_S2Q_OUTPUTS = ("meta", "final")
QUERY_LABELS = ("query_mask", "query_mask_ori", "query_base_mask", "query_base_mask_ori")


def adapted_parameters(model, which):
    """{name: parameter} that adapt: `head` every parameter outside the backbone and the frozen
    parts checkpoints reference (BAM's base learner); `published` those less the modules the
    published procedure leaves out (model.published_eft_skips: MSANet's attention and
    similarity fusion)."""
    backbone = {id(p) for p in model.backbone.parameters()}
    skipped = tuple(model.referenced_parts)
    if which == "published":
        skipped += tuple(model.published_eft_skips)
    return {n: p for n, p in model.named_parameters() if id(p) not in backbone and not n.startswith(skipped)}


def without_query_labels(batch):
    return {k: v for k, v in batch.items() if k not in QUERY_LABELS}


class EpisodeAdaptation:
    """The predictor evaluate() calls with eft=true: plain outputs and `logits_eft` (with
    eft_select=oracle also `logits_eft_oracle`) per batch, one episode at a time, the model
    back at its trained weights after each. `counts` holds which round each episode chose."""

    def __init__(self, model, cfg):
        self.model, self.cfg = model, cfg
        self.params = adapted_parameters(model, cfg.eft_params)
        for p in model.parameters():
            p.requires_grad_(False)
        for p in self.params.values():
            p.requires_grad_(True)
        self.trained = {n: p.detach().clone() for n, p in self.params.items()}
        self.counts = RoundCounts(cfg.eft_rounds, cfg.eft_select == "oracle")

    def __call__(self, model, batch, runtime):
        honest = without_query_labels(batch)
        parts = []
        for i in range(batch["query_img"].shape[0]):
            one = {k: v[i:i + 1] for k, v in honest.items()}
            outputs, candidates, first = self.episode(one, runtime)
            if self.cfg.eft_select == "oracle":
                outputs["logits_eft_oracle"] = self.oracle(candidates, first, batch["query_mask"][i:i + 1])
            parts.append(outputs)
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    def oracle(self, candidates, first, label):
        """The candidate (round first, first + 1, ...) closest to the query label (ties: the
        later): an upper bound of any round choice, never the result."""
        ious = [foreground_iou(c, label).item() for c in candidates]
        best = max(range(len(ious)), key=lambda i: (ious[i], i))
        self.counts.add(first + best, oracle=True)
        return candidates[best]

    def episode(self, one, runtime):
        """(outputs: the plain "logits*" and "logits_eft", the candidate predictions, the round
        of the first candidate)."""
        model, cfg = self.model, self.cfg
        size = tuple(one["query_img"].shape[-2:])
        with runtime.autocast():
            feats = model.encode(one)
            plain = model.decode(feats, size, one["class_id"])
        outputs = {k: v for k, v in plain.items() if k.startswith("logits")}
        try:
            preds, scores = self.rounds(one, feats, plain["logits"], size, runtime)
        finally:
            self.restore()
        if not preds:  # no round ran: the plain prediction stands
            chosen, candidates = 0, [plain["logits"]]
        else:
            candidates = preds
            chosen = len(preds) if cfg.eft_select == "last" else max(
                range(1, len(preds) + 1), key=lambda r: (scores[r - 1], r))
        self.counts.add(chosen)
        outputs["logits_eft"] = candidates[max(chosen - 1, 0)]
        return outputs, candidates, 1 if preds else 0

    def rounds(self, one, feats, logits, size, runtime):
        """The adaptation rounds (module docstring): (predictions, S2Q scores) of rounds 1.."""
        model, cfg = self.model, self.cfg
        valid = canvas_mask(one, size)
        query = query_part(feats)
        supports = support_part(feats)
        score = cfg.eft_select != "last"
        as_queries = None  # the supports in the query's role, made when S2Q first needs them
        optimizer = torch.optim.SGD(self.params.values(), lr=cfg.eft_lr, momentum=cfg.eft_momentum,
                                    weight_decay=cfg.eft_weight_decay)
        preds, scores, shared = [], [], {}
        for r in range(cfg.eft_rounds):
            mask = confident_mask(logits, valid, cfg.eft_keep, cfg.eft_min_pixels)
            if mask is None:
                break
            lent = as_support(model, query, mask)
            if score:
                as_queries = as_queries or supports_as_queries(model, supports, one["support_imgs"][0],
                                                               frozen=cfg.eft_s2q_output == "final")
                scores.append(self.s2q_score(as_queries, supports, lent, one["support_masks"][0], size, runtime, shared))
            extra = ExtraSupport(episode(query, [lent]), 1 - cfg.eft_blend)
            last = r == cfg.eft_rounds - 1
            with torch.set_grad_enabled(not last):
                with runtime.autocast():
                    out = model.decode(feats, size, one["class_id"], extra)
                loss = None if last else pseudo_loss(out, pseudo_labels(logits, valid), cfg.eft_aux_weight)
            if loss is not None:
                for group in optimizer.param_groups:
                    group["lr"] = step_lr(cfg.eft_lr, r, cfg.eft_rounds, cfg.eft_power)
                optimizer.zero_grad(set_to_none=True)
                with torch.enable_grad():
                    loss.backward()
                optimizer.step()
            logits = out["logits"].detach()
            preds.append(logits)
        return preds, scores

    @torch.no_grad()
    def s2q_score(self, as_queries, supports, lent, support_labels, size, runtime, shared):
        """Mean over the supports of the foreground IoU of support k segmented with the query
        (under its Q2S mask) in support k's place, the other supports unchanged: the K views in
        one batch. `shared` keeps the views' frozen cues with the real supports in every slot
        (computed once per episode); only the lent query's own change from round to round."""
        model, k = self.model, support_labels.shape[0]
        own = model.frozen_cues(episode(as_queries, [lent.repeated(k)]))
        if k > 1 and not shared:  # one shot: the lent image fills every slot, nothing is shared
            shared.update(model.frozen_cues(shared_supports(as_queries, supports)))
        view = swapped_supports(as_queries, supports, lent, on_diagonal(shared, own) if shared else own)
        with runtime.autocast():
            if self.cfg.eft_s2q_output == "meta":
                logits = model.decode_meta(view, size)
            else:
                logits = model.decode(view, size)["logits"]
        return foreground_iou(logits, support_labels).mean().item()

    def seed_done(self, seed, results, log):
        """After evaluate() on one seed: log its gain and round histogram; the per-seed record."""
        counts = self.counts.take()
        for line in seed_lines(seed, results, counts):
            log.info(line)
        return counts

    def finish(self, summary, per_seed, log):
        """After every seed: log the totals; the record's "eft" entry."""
        record = summary_record(self.cfg, summary, [s["eft"] for s in per_seed])
        for line in summary_lines(record):
            log.info(line)
        return record

    @torch.no_grad()
    def restore(self):
        for n, p in self.params.items():
            p.copy_(self.trained[n])
            p.grad = None


def test_time_adaptation(model, cfg):
    """The EpisodeAdaptation evaluate() should call for cfg, or None with eft off."""
    if not cfg.eft:
        return None
    return EpisodeAdaptation(model, cfg)
