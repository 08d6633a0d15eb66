"""Per-fold index: which images a fold uses and the file list of every class.

Rules (docs/protocol.md, "Which images a fold uses"): a class counts in an image when it covers
at least `min_pixels` (2048) pixels; the train index uses the fold's base classes, the val index
its novel classes; an image is kept when a class counts and is added to the file list of every
class that counts. With `filter_novel` (BAM, default) a training image is kept only if every
class present in it (0 and 255 aside, any pixel count) is a base class.
`python -m tools.index` prints the counts of every fold.
"""
import os
from dataclasses import dataclass

import numpy as np

from util.data.label_stats import DEFAULT_CACHE_DIR, compute_label_stats

MIN_PIXELS = 2 * 32 * 32


@dataclass
class FoldIndex:
    """The images of one fold and mode.

    fold: the Fold (dataset, split, base and novel classes).
    classes: the mode's class list (fold.base for train, fold.novel for val).
    images: (image, label) paths relative to data_root of the kept images, in list order.
    class_files: class -> int64 array of positions in `images` of the images where it counts.
    present(position): {class: pixels} of the mode's classes present in an image (any count),
        the candidate target classes of an episode whose query is that image; stored flat in
        present_offsets / present_values / present_pixels (numpy, cheap to send to workers).
    """
    fold: object
    mode: str
    data_root: str
    list_file: str
    classes: tuple
    min_pixels: int
    images: list
    class_files: dict
    present_offsets: np.ndarray
    present_values: np.ndarray
    present_pixels: np.ndarray

    def present(self, position):
        """{class: pixel count} of the mode's classes present in image `position`."""
        lo, hi = self.present_offsets[position], self.present_offsets[position + 1]
        return dict(zip(self.present_values[lo:hi].tolist(), self.present_pixels[lo:hi].tolist()))

    def check_supports(self, shot):
        """Raise ValueError when some query could not get `shot` distinct supports besides itself:
        a query where the target counts is in the target's file list, one where it does not is not."""
        targets = set(np.unique(self.present_values).tolist())
        for cls in self.classes:
            files = len(self.class_files[cls])
            available = files - 1 if files else 0
            if cls in targets and available < shot:
                raise ValueError(
                    f"fold {self.fold.split} ({self.mode}) of list {self.list_file}: class {cls} has "
                    f"{available} support image(s) besides the query, {shot}-shot episodes need {shot}")


def _class_table(classes):
    table = np.zeros(256, dtype=bool)
    table[list(classes)] = True
    return table


def build_fold_index(stats, fold, mode, filter_novel=True, min_pixels=MIN_PIXELS):
    """Derive the FoldIndex of (fold, mode) from a list's LabelStats (vectorised).

    `filter_novel` only acts in train mode. Raises ValueError for a label value outside 0..C and
    255, and for a fold with no usable image.
    """
    if mode not in ("train", "val"):
        raise ValueError(f"mode {mode!r} is invalid; expected 'train' or 'val'")
    num_classes, base = fold.num_classes, fold.base
    classes = base if mode == "train" else fold.novel
    values, pixels, line = stats.values, stats.pixels, stats.line_of_entry()
    bad = np.flatnonzero(values > num_classes)
    if bad.size:
        line_no = int(line[bad[0]])
        raise ValueError(f"label {os.path.join(stats.data_root, stats.pairs[line_no][1])} (list "
                         f"{stats.list_file} line {line_no + 1}) contains value {int(values[bad[0]])}; "
                         f"expected 0..{num_classes} or 255")
    keep_line = np.ones(len(stats.pairs), dtype=bool)
    if filter_novel and mode == "train":
        keep_line[line[~_class_table(base)[values]]] = False
    mode_entry = _class_table(classes)[values] & keep_line[line]
    counting = mode_entry & (pixels >= min_pixels)
    kept = np.unique(line[counting])
    if kept.size == 0:
        raise ValueError(f"fold {fold.split} ({mode}) of list {stats.list_file}: no image has a class of "
                         f"{list(classes)} covering {min_pixels} pixels")
    position_of_line = np.full(len(stats.pairs), -1, dtype=np.int64)
    position_of_line[kept] = np.arange(kept.size)
    count_pos, count_val = position_of_line[line[counting]], values[counting]
    order = np.argsort(count_val, kind="stable")  # entries stay in list order within a class
    split_at = np.searchsorted(count_val[order], classes, side="left").tolist() + [order.size]
    class_files = {c: count_pos[order[split_at[i]:split_at[i + 1]]] for i, c in enumerate(classes)}
    chosen = mode_entry & (position_of_line[line] >= 0)
    offsets = np.zeros(kept.size + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(np.bincount(position_of_line[line[chosen]], minlength=kept.size))
    images = [stats.pairs[i] for i in kept.tolist()]
    return FoldIndex(fold, mode, stats.data_root, stats.list_file, classes, min_pixels, images,
                     class_files, offsets, values[chosen], pixels[chosen])


def load_fold_index(data_root, list_file, fold, mode, filter_novel=True, cache_dir=DEFAULT_CACHE_DIR,
                    workers=None):
    """Label statistics (cached, see util/data/label_stats.py) -> the FoldIndex of one fold and mode."""
    stats = compute_label_stats(list_file, data_root, cache_dir=cache_dir, workers=workers)
    return build_fold_index(stats, fold, mode, filter_novel)
