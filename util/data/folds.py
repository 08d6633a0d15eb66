"""Class splits of Pascal-5i and COCO-20i, and the label remaps derived from them
(docs/protocol.md, Folds).

Every class list is in ascending order: the position of a base class in its list defines its
base-label id (position + 1, 0 is background).
"""
from dataclasses import dataclass

import numpy as np

DATASETS = {"pascal": 20, "coco": 80}   # dataset -> number of classes (ids 1..C)
NUM_FOLDS = 4
IGNORE_LABEL = 255                      # pixels that are never scored or trained on


@dataclass(frozen=True)
class Fold:
    """One fold of a dataset: its base and novel class ids, both ascending tuples."""
    dataset: str
    split: int
    base: tuple
    novel: tuple

    @property
    def num_classes(self):
        return DATASETS[self.dataset]


def check_dataset(dataset):
    """Return `dataset` if it is a known dataset name, else raise a one-line ValueError."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset {dataset!r} is unknown; expected one of {sorted(DATASETS)}")
    return dataset


def get_fold(dataset, split, use_split_coco=True):
    """The Fold `split` of `dataset`.

    Pascal-5i: novel = 5*split+1 .. 5*split+5. COCO-20i: with `use_split_coco` (the default of
    PFENet, BAM and HSNet) novel = {4k + split + 1 : k = 0..19}, interleaved; without it the
    consecutive block 20*split+1 .. 20*split+20.
    """
    num_classes = DATASETS[check_dataset(dataset)]
    if split not in range(NUM_FOLDS):
        raise ValueError(f"split {split!r} is invalid; expected one of 0, 1, 2, 3")
    if dataset == "pascal":
        novel = range(5 * split + 1, 5 * split + 6)
    elif use_split_coco:
        novel = range(split + 1, num_classes + 1, 4)
    else:
        novel = range(20 * split + 1, 20 * split + 21)
    novel = tuple(novel)
    base = tuple(c for c in range(1, num_classes + 1) if c not in novel)
    return Fold(dataset, split, base, novel)


def binary_lut(target_class):
    """256-entry lookup table: target -> 1, 255 -> 255, every other value -> 0."""
    lut = np.zeros(256, dtype=np.uint8)
    lut[target_class] = 1
    lut[IGNORE_LABEL] = IGNORE_LABEL
    return lut


def base_lut(base_classes):
    """256-entry lookup table: base class c -> its position in `base_classes` + 1, 255 -> 255,
    novel classes and background -> 0."""
    lut = np.zeros(256, dtype=np.uint8)
    for position, cls in enumerate(base_classes):
        lut[cls] = position + 1
    lut[IGNORE_LABEL] = IGNORE_LABEL
    return lut


def invalid_label_values(num_classes):
    """Boolean table over 0..255: True for values a label of this dataset must not contain."""
    invalid = np.ones(256, dtype=bool)
    invalid[: num_classes + 1] = False
    invalid[IGNORE_LABEL] = False
    return invalid
