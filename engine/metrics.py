"""Segmentation metrics, summed over episodes as docs/protocol.md (Metrics) says.

FewShotEvaluator: per target class, foreground intersection and union summed over the episodes
of that class; mIoU = mean over classes of sum(I) / sum(U). FB-IoU: background and foreground
intersection / union summed over all episodes, then averaged. SemanticEvaluator: the same sums
per class over every pixel (the base learner's mIoU). Pixels labelled 255 are ignored.

Both keep their sums in one float64 tensor, so several processes merge them with one
all_reduce. `update(logits, batch)` turns logits into predictions at the evaluation resolution:
the input resolution, or with `ori_resize` the original label's (docs/protocol.md, Transforms).
It scores a whole batch with a few tensor operations on the logits' device (samples whose
original labels have the same longer side together) and copies the counts to the CPU once per
such group, so batches pay on a GPU.
"""
import torch
import torch.nn.functional as F

from util.data.folds import IGNORE_LABEL


def intersection_union(pred, target, num_classes, ignore_index=IGNORE_LABEL):
    """Per-class intersection and union counts (float64 tensors of length num_classes)."""
    valid = target != ignore_index
    pred, target = pred[valid].long(), target[valid].long()
    if target.numel() and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"label values must be in 0..{num_classes - 1} or {ignore_index}; "
                         f"got {target.min().item()}..{target.max().item()}")
    inter = torch.bincount(target[pred == target], minlength=num_classes)
    area_pred = torch.bincount(pred, minlength=num_classes)[:num_classes]
    area_target = torch.bincount(target, minlength=num_classes)
    return inter.double().cpu(), (area_pred + area_target - inter).double().cpu()


def binary_counts(pred, target, ignore_index=IGNORE_LABEL):
    """Per-sample background / foreground intersection and union of binary predictions.

    pred, target [n, h, w] (0 = background, 1 = target, target 255 ignored) -> int64 [n, 4] on
    the CPU: I_bg, I_fg, U_bg, U_fg (one copy from the device)."""
    valid = target != ignore_index
    fg_t, bg_t = target == 1, target == 0
    fg_p, bg_p = (pred == 1) & valid, (pred == 0) & valid
    i_fg, i_bg = (fg_p & fg_t).sum((1, 2)), (bg_p & bg_t).sum((1, 2))
    other = (valid & ~fg_t & ~bg_t).sum((1, 2))
    counts = torch.stack([i_bg, i_fg, bg_p.sum((1, 2)) + bg_t.sum((1, 2)) - i_bg,
                          fg_p.sum((1, 2)) + fg_t.sum((1, 2)) - i_fg, other], 1).cpu()
    if counts[:, 4].any():
        bad = target[valid & ~fg_t & ~bg_t]
        raise ValueError(f"label values must be in 0..1 or {ignore_index}; "
                         f"got {bad.min().item()}..{bad.max().item()}")
    return counts[:, :4]


def predictions(logits, batch, target_key, ori_resize):
    """Yield (pred [n, h, w], target [n, h, w], sample indices): bilinear (align_corners=True)
    upsampling, then argmax.

    Without ori_resize, the whole batch at the target's resolution. With it, one group per
    distinct L (L = longer side of the original label): those samples' logits upsampled to
    L x L, their original labels cropped from the 255-padded canvas."""
    if not ori_resize:
        target = batch[target_key]
        up = F.interpolate(logits.float(), size=target.shape[-2:], mode="bilinear", align_corners=True)
        yield up.argmax(1), target.to(up.device), list(range(logits.shape[0]))
        return
    targets = batch[target_key + "_ori"]
    sides = batch["ori_size"].max(1).values.tolist()
    for side in sorted(set(sides)):
        index = [i for i, s in enumerate(sides) if s == side]
        group = logits if len(index) == len(sides) else logits[index]
        up = F.interpolate(group.float(), size=(side, side), mode="bilinear", align_corners=True)
        yield up.argmax(1), targets[index, :side, :side].to(up.device), index


class _SummedMetric:
    """Sums kept in one float64 tensor (`state`), merged across processes by all_reduce."""

    def __init__(self, size, target_key, ori_resize):
        self.state = torch.zeros(size, dtype=torch.float64)
        self.target_key = target_key
        self.ori_resize = ori_resize

    def all_reduce(self):
        """Sum the states of every process (no-op without torch.distributed)."""
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
            t = self.state.to(backend_device)
            dist.all_reduce(t)
            self.state = t.cpu()


# How mIoU counts a fold class that had no episode (config key miou_missing):
# zero: it counts 0, the references' rule (they divide by the number of fold classes);
# skip: mIoU averages the classes that had episodes.
MISSING_CLASS_RULES = ("zero", "skip")


class FewShotEvaluator(_SummedMetric):
    """mIoU over the fold's classes and FB-IoU, for binary (background / target) predictions."""

    def __init__(self, class_ids, ori_resize=True, target_key="query_mask", missing="zero"):
        if missing not in MISSING_CLASS_RULES:
            raise ValueError(f"missing {missing!r} is invalid; expected one of {', '.join(MISSING_CLASS_RULES)}")
        self.missing = missing
        self.class_ids = sorted(int(c) for c in class_ids)
        self.slot = {c: i for i, c in enumerate(self.class_ids)}
        n = len(self.class_ids)
        # layout: [I_bg, I_fg, U_bg, U_fg, I_c..., U_c..., episodes_c...]
        super().__init__(4 + 3 * n, target_key, ori_resize)
        self._n = n

    def add(self, pred, target, class_id):
        """Score one episode (pred and target of the same shape; 0 = background, 1 = target)."""
        self.add_episodes(pred.reshape(1, 1, -1), target.reshape(1, 1, -1), [class_id])

    def add_episodes(self, pred, target, class_ids):
        """Score n episodes: pred, target [n, h, w], class_ids n class ids."""
        slots = []
        for c in class_ids:
            if int(c) not in self.slot:
                raise ValueError(f"class {int(c)} is not one of this evaluator's classes {self.class_ids}")
            slots.append(self.slot[int(c)])
        counts = binary_counts(pred, target).double()
        n, delta = self._n, torch.zeros_like(self.state)
        delta[0:4] = counts.sum(0)
        slots = torch.tensor(slots)
        delta.index_add_(0, 4 + slots, counts[:, 1])
        delta.index_add_(0, 4 + n + slots, counts[:, 3])
        delta.index_add_(0, 4 + 2 * n + slots, torch.ones_like(counts[:, 0]))
        self.state += delta

    def update(self, logits, batch):
        class_ids = batch["class_id"].view(-1).tolist()
        for pred, target, index in predictions(logits, batch, self.target_key, self.ori_resize):
            self.add_episodes(pred, target, [class_ids[i] for i in index])

    def result(self):
        """dict(miou, fbiou, class_iou {class: IoU}, episodes, missing_classes, missing_rule).

        missing_classes lists the fold classes without an episode (with the protocol's 1000
        episodes every class has some); the `missing` rule says how they count in mIoU."""
        n, s = self._n, self.state
        fb = (s[0:2] / s[2:4].clamp_min(1e-10)).tolist()
        inter, union, count = s[4:4 + n], s[4 + n:4 + 2 * n], s[4 + 2 * n:]
        class_iou = {c: (inter[i] / union[i].clamp_min(1e-10)).item()
                     for i, c in enumerate(self.class_ids) if count[i] > 0}
        missing = [c for i, c in enumerate(self.class_ids) if count[i] == 0]
        classes = len(self.class_ids) if self.missing == "zero" else len(class_iou)
        miou = sum(class_iou.values()) / classes if classes else float("nan")
        return {"miou": miou, "fbiou": sum(fb) / 2, "fb_iou_bg_fg": fb, "class_iou": class_iou,
                "episodes": int(count.sum().item()), "missing_classes": missing,
                "missing_rule": self.missing}


class SemanticEvaluator(_SummedMetric):
    """Per-class IoU over labels 0..num_classes-1 (0 = background), e.g. the base learner."""

    def __init__(self, num_classes, ori_resize=True, target_key="query_base_mask"):
        super().__init__(2 * num_classes + 1, target_key, ori_resize)
        self.num_classes = num_classes

    def add(self, pred, target):
        inter, union = intersection_union(pred, target, self.num_classes)
        c = self.num_classes
        self.state[:c] += inter
        self.state[c:2 * c] += union
        self.state[2 * c] += pred.shape[0] if pred.dim() == 3 else 1

    def update(self, logits, batch):
        for pred, target, _ in predictions(logits, batch, self.target_key, self.ori_resize):
            self.add(pred, target)

    def result(self):
        """dict(miou over classes 1.., miou_with_background, class_iou, images)."""
        c = self.num_classes
        seen = self.state[c:2 * c] > 0
        iou = self.state[:c] / self.state[c:2 * c].clamp_min(1e-10)
        class_iou = {i: iou[i].item() for i in range(c) if seen[i]}
        fg = [v for k, v in class_iou.items() if k > 0]
        return {"miou": sum(fg) / len(fg) if fg else float("nan"),
                "miou_with_background": sum(class_iou.values()) / max(len(class_iou), 1),
                "class_iou": class_iou, "images": int(self.state[2 * c].item())}
