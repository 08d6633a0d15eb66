"""What the episode dataset and the base-class dataset share: the mode, the augmentation or the
val resize, and the epoch that seeds every train sample (util/seeding.py)."""
import torch
from torch.utils.data import Dataset

from util.data.label_stats import check_data_root
from util.data.transforms import TrainAugment, mask_to_tensor, top_left_canvas, val_resize
from util.seeding import SharedEpoch, sample_rng

MODES = ("train", "val")


class FoldDataset(Dataset):
    """Args shared by the subclasses:
        data_root: directory the list paths are relative to.
        mode: "train" (random augmentation, crop train_size, scale in scale_range) or "val"
            (resize to val_size, top-left on a val_size canvas).
        seed: sample seed; a train sample's draws also depend on the epoch (set_epoch).
        ori_resize: val mode adds the original-resolution mask (`*_ori`) for scoring.
    """

    def __init__(self, data_root, mode, *, train_size, val_size, scale_range, seed, ori_resize):
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is invalid; expected one of {list(MODES)}")
        check_data_root(data_root)
        self.data_root, self.mode, self.seed = data_root, mode, int(seed)
        self.augment = TrainAugment(crop_size=int(train_size), scale_range=tuple(scale_range))
        self.val_size = int(val_size)
        self.ori_resize = bool(ori_resize)
        self._epoch = SharedEpoch()

    def set_epoch(self, epoch):
        """Select the training epoch (part of every train sample's seed; val ignores it)."""
        self._epoch.set(epoch)

    def rng(self, i):
        """The generator of sample i (val samples always use epoch 0)."""
        return sample_rng(self.seed, 0 if self.mode == "val" else self._epoch.get(), i)

    def transform(self, image, label, rng, target=None):
        """Train: the augmentation (crop retries keep `target`); val: the resize to val_size."""
        if self.mode == "train":
            return self.augment(image, label, rng, target)
        return val_resize(image, label, self.val_size)

    def add_original(self, sample, raw_label, key, lut):
        """Val mode: `ori_size` and, with ori_resize, sample[key] = lut[raw_label] top-left on
        an L x L canvas of 255 (L = the label's longer side)."""
        if self.mode != "val":
            return
        sample["ori_size"] = torch.tensor(raw_label.shape, dtype=torch.int64)
        if self.ori_resize:
            sample[key] = mask_to_tensor(top_left_canvas(lut[raw_label]))
