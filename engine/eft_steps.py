"""The pieces of test-time adaptation (docs/eft.md) that are plain tensor arithmetic: the
valid canvas of a val image, the query's pseudo labels and its confident Q2S mask, the loss on
pseudo labels, the learning rate of each step and the foreground IoU that scores a round."""
import torch
import torch.nn.functional as F

from model.common import resize
from util.data.folds import IGNORE_LABEL
from util.data.transforms import val_hw


def canvas_mask(batch, size):
    """[1, H, W] bool: the pixels of the val canvas that hold the image (val images sit top-left
    on a padded square, docs/protocol.md); all of them without `ori_size`. Reads no label."""
    valid = torch.ones(1, *size, dtype=torch.bool, device=batch["query_img"].device)
    if "ori_size" in batch and size[0] == size[1]:
        h, w = val_hw(*batch["ori_size"][0].tolist(), size[0])
        valid[:, h:], valid[:, :, w:] = False, False
    return valid


def foreground(logits):
    """Foreground probability [N, H, W] of 2-way outputs (BAM's ensemble included)."""
    return logits.float().softmax(1)[:, 1]


def pseudo_labels(logits, valid):
    """Hard labels of a prediction, the padding ignored: the loss's target."""
    labels = logits.argmax(1)
    return labels.masked_fill(~valid, IGNORE_LABEL)


def confident_mask(logits, valid, keep, min_pixels):
    """The query's Q2S mask [1, H, W] (float 0 / 1): of the pixels predicted foreground with
    probability > 0.5, the `keep` most confident fraction (at least one pixel). None when fewer
    than `min_pixels` pass 0.5: there is no object to lend the supports (the caller stops)."""
    prob = foreground(logits) * valid
    passing = prob > 0.5
    count = int(passing.sum())
    if count < max(min_pixels, 1):
        return None
    kept = max(1, int(round(keep * count)))
    threshold = prob[passing].topk(kept).values[-1]
    return (passing & (prob >= threshold)).float()


def pseudo_loss(outputs, target, aux_weight):
    """Cross-entropy of the final output on the pseudo labels + aux_weight x the mean over the
    arch's other 2-way outputs (BAM / MSANet: the meta branch; PFENet: every scale's), each
    upsampled to the labels' size; the baseline has none."""
    loss = F.cross_entropy(outputs["logits"].float(), target, ignore_index=IGNORE_LABEL)
    aux = [v for k, v in outputs.items() if k != "logits" and k.startswith(("logits", "aux_logits"))]
    if aux and aux_weight:
        size = target.shape[-2:]
        aux_loss = sum(F.cross_entropy(resize(a.float(), size), target, ignore_index=IGNORE_LABEL) for a in aux)
        loss = loss + aux_weight * aux_loss / len(aux)
    return loss


def step_lr(base_lr, step, rounds, power):
    """Poly decay over the rounds: base_lr x (1 - step / (rounds + 1)) ^ power."""
    return base_lr * (1 - step / (rounds + 1)) ** power


def foreground_iou(logits, label):
    """Foreground IoU [N] of argmax(logits) against a label [N, H, W] (1 target, 0 background,
    255 ignored); 1 when both are empty."""
    pred = resize(logits.float(), label.shape[-2:]).argmax(1)
    valid = label != IGNORE_LABEL
    p, t = (pred == 1) & valid, (label == 1) & valid
    inter, union = (p & t).sum((1, 2)).double(), (p | t).sum((1, 2)).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
