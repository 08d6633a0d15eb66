"""Images of a list with base-class labels, for BAM's base learner (a PSPNet, stage 1)."""
import numpy as np
import torch

from util.data.fold_dataset import FoldDataset
from util.data.folds import base_lut, invalid_label_values
from util.data.label_io import image_id, read_pair
from util.data.lists import read_pairs
from util.data.transforms import mask_to_tensor, normalise_to_tensor

_IDENTITY = np.arange(256, dtype=np.uint8)  # the base label is scored as it is


class BaseClassDataset(FoldDataset):
    """Every image of a list file (as BAM's base training: no 2048 rule, no filter), labelled
    with the fold's base classes: base class c -> its position in the base list + 1, novel
    classes and background -> 0, 255 kept.

    Sample i is image i; its random draws come from (seed, epoch, i). Train mode augments with
    scale, rotate, blur, flip and a random crop without the target retry (there is no target);
    val mode resizes like the episodes and adds `ori_size` and, with `ori_resize`,
    `query_base_mask_ori`.

    Args (besides FoldDataset's): list_file, fold (util.data.folds.Fold).
    """

    def __init__(self, data_root, list_file, fold, mode, *, train_size, val_size, scale_range,
                 seed, ori_resize=True):
        super().__init__(data_root, mode, train_size=train_size, val_size=val_size,
                         scale_range=scale_range, seed=seed, ori_resize=ori_resize)
        self.pairs = read_pairs(list_file)
        self.fold = fold
        self._lut = base_lut(fold.base)
        self._invalid = invalid_label_values(fold.num_classes)

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} is out of range 0..{len(self) - 1}")
        image, label = read_pair(self.data_root, self.pairs[i])
        bad = self._invalid[label]
        if bad.any():
            raise ValueError(f"label {self.pairs[i][1]} under {self.data_root} contains value "
                             f"{int(label[bad].max())}; expected 0..{self.fold.num_classes} or 255")
        base_label = self._lut[label]
        sample = {"index": torch.tensor(i, dtype=torch.int64), "query_name": image_id(self.pairs[i])}
        image, crop = self.transform(image, base_label, self.rng(i))
        self.add_original(sample, base_label, "query_base_mask_ori", _IDENTITY)
        sample["query_img"] = normalise_to_tensor(image)
        sample["query_base_mask"] = mask_to_tensor(crop)
        return sample
