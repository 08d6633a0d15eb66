"""Few-shot episodes of Pascal-5i / COCO-20i as the batch dicts of docs/ARCHITECTURE.md."""
import torch
from torch.utils.data import Dataset

from util.folds import base_lut, binary_lut
from util.index import MIN_PIXELS, load_fold_index
from util.label_stats import DEFAULT_CACHE_DIR
from util.sampling import (EPISODE_DEFAULTS, SharedEpoch, check_choice, check_range, image_id,
                           read_pair, sample_rng)
from util.transforms import (TrainAugment, mask_to_tensor, normalise_into, normalise_to_tensor,
                             top_left_canvas, val_resize)


class EpisodeDataset(Dataset):
    """Train or val episodes of one fold.

    Episode i: the query is image i of the fold index (val: image i mod N, so `test_num`
    episodes cycle over the index as the references' val loop does); the target class is
    uniform among the query's classes of the mode's list; `shot` distinct supports are drawn
    uniformly from the target's file list, never the query. Every random choice comes from a
    generator seeded by (seed, epoch, i) - val always uses epoch 0 - so an episode does not
    depend on the number of workers or the batch size.

    Args:
        data_root: directory the list paths are relative to.
        list_file: `IMAGE LABEL` list (train list for mode "train", val list for "val").
        dataset: "pascal" or "coco".  split: fold 0..3.  shot: supports per episode.
        mode: "train" (base classes, random augmentation) or "val" (novel classes, resize).
        use_split_coco: COCO-20i interleaved folds (True) or consecutive (False).
        filter_novel: train mode only; drop images containing novel classes (BAM).
        min_pixels: pixels a class needs to count in an image (2048).
        train_size: crop side in train mode (None: 473 Pascal, 641 COCO).
        val_size: canvas side in val mode (None: 473 / 641).
        scale_range, rotate_range, rotate_p, blur_p, flip_p: train augmentation (scale None:
            (0.9, 1.1) Pascal, (0.8, 1.25) COCO).
        test_num: number of val episodes.  seed: episode seed.
        val_upscale: True resizes every val image to val_size (references' resized_val: True);
            False leaves images already within val_size at their size.
        ori_resize: val mode adds `query_mask_ori` (original-resolution label).
        index_cache_dir: where label statistics are cached (None: no cache).
        workers_for_index: processes reading labels on a cold index build (None: all CPUs).
    """

    def __init__(self, data_root, list_file, dataset, split, shot=1, mode="train", *,
                 use_split_coco=True, filter_novel=True, min_pixels=MIN_PIXELS, train_size=None,
                 val_size=None, scale_range=None, rotate_range=(-10.0, 10.0), rotate_p=0.5,
                 blur_p=0.5, flip_p=0.5, test_num=1000, seed=321, val_upscale=True,
                 ori_resize=True, index_cache_dir=DEFAULT_CACHE_DIR, workers_for_index=None):
        self.mode = check_choice("mode", mode, ("train", "val"))
        if int(shot) < 1:
            raise ValueError(f"shot must be >= 1, got {shot}")
        if mode == "val" and int(test_num) < 1:
            raise ValueError(f"test_num must be >= 1, got {test_num}")
        self.shot, self.test_num, self.seed = int(shot), int(test_num), int(seed)
        self.index = load_fold_index(data_root, list_file, dataset, split, mode, use_split_coco,
                                     filter_novel, min_pixels, index_cache_dir, workers_for_index)
        self.index.check_supports(self.shot)
        defaults = EPISODE_DEFAULTS[dataset]
        self.augment = TrainAugment(
            crop_size=int(train_size or defaults["train_size"]),
            scale_range=check_range("scale_range", scale_range or defaults["scale_range"]),
            rotate_range=check_range("rotate_range", rotate_range),
            rotate_p=float(rotate_p), blur_p=float(blur_p), flip_p=float(flip_p))
        self.val_size = int(val_size or defaults["val_size"])
        self.val_upscale, self.ori_resize = bool(val_upscale), bool(ori_resize)
        self.data_root = data_root
        self._base_lut = base_lut(self.index.base_classes)
        self._binary_luts = {c: binary_lut(c) for c in self.index.classes}
        self._epoch = SharedEpoch()

    def set_epoch(self, epoch):
        """Select the training epoch (part of every train episode's seed; val ignores it)."""
        self._epoch.set(epoch)

    def __len__(self):
        return self.test_num if self.mode == "val" else len(self.index.images)

    def draw(self, i):
        """The random choices of episode i: (rng, query position, target class, support positions).
        The returned rng continues with the transform draws."""
        if not 0 <= i < len(self):
            raise IndexError(f"episode {i} is out of range 0..{len(self) - 1}")
        epoch = 0 if self.mode == "val" else self._epoch.get()
        rng = sample_rng(self.seed, epoch, i)
        query = i % len(self.index.images)
        candidates = sorted(self.index.present(query))
        target = candidates[int(rng.integers(len(candidates)))]
        files = self.index.class_files[target]
        supports = []
        while len(supports) < self.shot:  # check_supports guarantees enough candidates
            pick = int(files[rng.integers(len(files))])
            if pick != query and pick not in supports:
                supports.append(pick)
        return rng, query, target, supports

    def __getitem__(self, i):
        rng, query, target, supports = self.draw(i)
        images = self.index.images
        to_binary = self._binary_luts[target]
        q_img, q_label = read_pair(self.data_root, images[query])
        raw_label = q_label
        if self.mode == "train":
            q_img, q_label = self.augment(q_img, q_label, rng, target)
        else:
            q_img, q_label = val_resize(q_img, q_label, self.val_size, self.val_upscale)
        side = q_label.shape[0]
        support_imgs = torch.empty((self.shot, 3, side, side), dtype=torch.float32)
        support_masks = torch.empty((self.shot, side, side), dtype=torch.int64)
        for k, position in enumerate(supports):  # written in place: no per-shot copies to stack
            s_img, s_label = read_pair(self.data_root, images[position])
            if self.mode == "train":
                s_img, s_label = self.augment(s_img, s_label, rng, target)
            else:
                s_img, s_label = val_resize(s_img, s_label, self.val_size, self.val_upscale)
            normalise_into(s_img, support_imgs[k].numpy())
            support_masks[k].numpy()[...] = to_binary[s_label]
        sample = {
            "query_img": normalise_to_tensor(q_img),
            "query_mask": mask_to_tensor(to_binary[q_label]),
            "support_imgs": support_imgs,
            "support_masks": support_masks,
            "class_id": torch.tensor(target, dtype=torch.int64),
            "query_base_mask": mask_to_tensor(self._base_lut[q_label]),
            "index": torch.tensor(i, dtype=torch.int64),
            "query_name": image_id(images[query]),
            "support_names": [image_id(images[p]) for p in supports],
        }
        if self.mode == "val":
            sample["ori_size"] = torch.tensor(raw_label.shape, dtype=torch.int64)
            if self.ori_resize:
                sample["query_mask_ori"] = mask_to_tensor(top_left_canvas(to_binary[raw_label]))
        return sample
