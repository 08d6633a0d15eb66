"""Batching of the sample dicts of docs/ARCHITECTURE.md."""
import torch

from util.data.folds import IGNORE_LABEL


def _pad_square(masks):
    side = max(m.shape[-1] for m in masks)
    out = torch.full((len(masks), side, side), IGNORE_LABEL, dtype=masks[0].dtype)
    for i, mask in enumerate(masks):
        out[i, : mask.shape[0], : mask.shape[1]] = mask
    return out


def collate_episodes(samples):
    """Stack a list of sample dicts into one batch dict.

    Tensors are stacked along a new dim 0; `*_ori` masks (L x L, L varying) are padded with 255
    to the batch's largest L first; strings and lists of strings become lists.
    """
    if not samples:
        raise ValueError("collate_episodes got an empty list of samples")
    batch = {}
    for key, first in samples[0].items():
        values = [s[key] for s in samples]
        if isinstance(first, torch.Tensor):
            batch[key] = _pad_square(values) if key.endswith("_ori") else torch.stack(values)
        else:
            batch[key] = values
    return batch
