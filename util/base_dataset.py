"""Images of a list with base-class labels, for BAM's base learner (a PSPNet, stage 1)."""
import torch
from torch.utils.data import Dataset

from util.folds import NUM_CLASSES, base_lut, check_dataset, fold_classes, invalid_label_values
from util.label_stats import check_data_root, parse_list, read_list_bytes
from util.sampling import (BASE_DEFAULTS, SharedEpoch, check_choice, check_range, image_id,
                           read_pair, sample_rng)
from util.transforms import (TrainAugment, mask_to_tensor, normalise_to_tensor, top_left_canvas,
                             val_resize)


class BaseDataset(Dataset):
    """Every image of a list file (as BAM's base training: no 2048 rule, no filter), labelled
    with the fold's base classes: base class c -> its position in the base list + 1, novel
    classes and background -> 0, 255 kept.

    Sample i is image i; its random draws come from (seed, epoch, i). Train mode augments with
    scale, rotate, blur, flip and a random crop without the target retry (there is no target);
    val mode resizes like the episodes and adds `ori_size` and, with `ori_resize`,
    `query_base_mask_ori`.

    Args:
        data_root, list_file, dataset ("pascal" | "coco"), split (fold 0..3), mode ("train" | "val").
        use_split_coco: COCO-20i interleaved folds (True) or consecutive (False).
        train_size: crop side (417).  val_size: val canvas side (417).
        scale_range (0.5, 2.0), rotate_range, rotate_p, blur_p, flip_p: train augmentation.
        seed: sample seed.  val_upscale, ori_resize: as in EpisodeDataset.
    """

    def __init__(self, data_root, list_file, dataset, split, mode="train", *, use_split_coco=True,
                 train_size=None, val_size=None, scale_range=None, rotate_range=(-10.0, 10.0),
                 rotate_p=0.5, blur_p=0.5, flip_p=0.5, seed=321, val_upscale=True, ori_resize=True):
        self.mode = check_choice("mode", mode, ("train", "val"))
        check_data_root(data_root)
        self.data_root, self.seed = data_root, int(seed)
        self.pairs = parse_list(read_list_bytes(list_file), list_file)
        self.num_classes = NUM_CLASSES[check_dataset(dataset)]
        self.base_classes, self.novel_classes = fold_classes(dataset, split, use_split_coco)
        self.num_base = len(self.base_classes)
        self.augment = TrainAugment(
            crop_size=int(train_size or BASE_DEFAULTS["train_size"]),
            scale_range=check_range("scale_range", scale_range or BASE_DEFAULTS["scale_range"]),
            rotate_range=check_range("rotate_range", rotate_range),
            rotate_p=float(rotate_p), blur_p=float(blur_p), flip_p=float(flip_p))
        self.val_size = int(val_size or BASE_DEFAULTS["val_size"])
        self.val_upscale, self.ori_resize = bool(val_upscale), bool(ori_resize)
        self._lut = base_lut(self.base_classes)
        self._invalid = invalid_label_values(self.num_classes)
        self._epoch = SharedEpoch()

    def set_epoch(self, epoch):
        """Select the training epoch (part of every train sample's seed; val ignores it)."""
        self._epoch.set(epoch)

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} is out of range 0..{len(self) - 1}")
        image, label = read_pair(self.data_root, self.pairs[i])
        bad = self._invalid[label]
        if bad.any():
            raise ValueError(f"label {self.pairs[i][1]} under {self.data_root} contains value "
                             f"{int(label[bad].max())}; expected 0..{self.num_classes} or 255")
        base_label = self._lut[label]
        sample = {"index": torch.tensor(i, dtype=torch.int64), "query_name": image_id(self.pairs[i])}
        if self.mode == "train":
            rng = sample_rng(self.seed, self._epoch.get(), i)
            image, crop = self.augment(image, base_label, rng)
        else:
            image, crop = val_resize(image, base_label, self.val_size, self.val_upscale)
            sample["ori_size"] = torch.tensor(label.shape, dtype=torch.int64)
            if self.ori_resize:
                sample["query_base_mask_ori"] = mask_to_tensor(top_left_canvas(base_label))
        sample["query_img"] = normalise_to_tensor(image)
        sample["query_base_mask"] = mask_to_tensor(crop)
        return sample
