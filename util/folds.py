"""Class splits of Pascal-5i and COCO-20i, and the label remaps derived from them.

Every list is in ascending order: the position of a base class in its list defines its
base-label id (position + 1, 0 is background), as PROTOCOL.md says.
"""
import numpy as np

NUM_CLASSES = {"pascal": 20, "coco": 80}
NUM_FOLDS = 4
IGNORE_LABEL = 255


def check_dataset(dataset):
    """Return `dataset` if it is a known dataset name, else raise a one-line ValueError."""
    if dataset not in NUM_CLASSES:
        raise ValueError(f"dataset {dataset!r} is unknown; expected one of {sorted(NUM_CLASSES)}")
    return dataset


def fold_classes(dataset, split, use_split_coco=True):
    """Return (base_classes, novel_classes) of fold `split`, both ascending lists of class ids.

    Pascal-5i: novel = 5*split+1 .. 5*split+5. COCO-20i: with `use_split_coco` (the default of
    PFENet, BAM and HSNet) novel = {4k + split + 1 : k = 0..19}, interleaved; without it the
    consecutive block 20*split+1 .. 20*split+20.
    """
    num_classes = NUM_CLASSES[check_dataset(dataset)]
    if split not in range(NUM_FOLDS):
        raise ValueError(f"split {split!r} is invalid; expected one of 0, 1, 2, 3")
    if dataset == "pascal":
        novel = list(range(5 * split + 1, 5 * split + 6))
    elif use_split_coco:
        novel = list(range(split + 1, num_classes + 1, 4))
    else:
        novel = list(range(20 * split + 1, 20 * split + 21))
    novel_set = set(novel)
    base = [c for c in range(1, num_classes + 1) if c not in novel_set]
    return base, novel


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
