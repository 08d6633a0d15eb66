"""Few-shot episodes of Pascal-5i / COCO-20i as the batch dicts of docs/ARCHITECTURE.md."""
import torch

from util.data.fold_dataset import FoldDataset
from util.data.folds import base_lut, binary_lut
from util.data.index import load_fold_index
from util.data.label_io import image_id, read_pair
from util.data.label_stats import DEFAULT_CACHE_DIR
from util.data.transforms import mask_to_tensor, normalise_into, normalise_to_tensor


class EpisodeDataset(FoldDataset):
    """Train or val episodes of one fold (docs/protocol.md, One episode).

    Episode i: the query is image i of the fold index (val: image i mod N, so `test_num`
    episodes cycle over the index as the references' val loop does); the target class is
    uniform among the query's classes of the mode's list; `shot` distinct supports are drawn
    uniformly from the target's file list, never the query. Every random choice comes from a
    generator seeded by (seed, epoch, i) - val always uses epoch 0 - so an episode does not
    depend on the number of workers or the batch size.

    Args (besides FoldDataset's):
        list_file: `IMAGE LABEL` list (train list for mode "train", val list for "val").
        fold: util.data.folds.Fold.  shot: supports per episode.
        filter_novel: train mode only; drop images containing novel classes (BAM).
        test_num: number of val episodes.
        index_cache_dir: where label statistics are cached (None: no cache).
        index_workers: processes reading labels on a cold index build (None: all CPUs).
    """

    def __init__(self, data_root, list_file, fold, shot, mode, *, train_size, val_size, scale_range,
                 seed, ori_resize=True, filter_novel=True, test_num=1000,
                 index_cache_dir=DEFAULT_CACHE_DIR, index_workers=None):
        super().__init__(data_root, mode, train_size=train_size, val_size=val_size,
                         scale_range=scale_range, seed=seed, ori_resize=ori_resize)
        if int(shot) < 1:
            raise ValueError(f"shot must be >= 1, got {shot}")
        if mode == "val" and int(test_num) < 1:
            raise ValueError(f"test_num must be >= 1, got {test_num}")
        self.shot, self.test_num = int(shot), int(test_num)
        self.index = load_fold_index(data_root, list_file, fold, mode, filter_novel, index_cache_dir,
                                     index_workers)
        self.index.check_supports(self.shot)
        self._base_lut = base_lut(fold.base)
        self._binary_luts = {c: binary_lut(c) for c in self.index.classes}

    def __len__(self):
        return self.test_num if self.mode == "val" else len(self.index.images)

    def draw(self, i):
        """The random choices of episode i: (rng, query position, target class, support positions).
        The returned rng continues with the transform draws."""
        if not 0 <= i < len(self):
            raise IndexError(f"episode {i} is out of range 0..{len(self) - 1}")
        rng = self.rng(i)
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
        q_img, q_label = self.transform(q_img, q_label, rng, target)
        side = q_label.shape[0]
        support_imgs = torch.empty((self.shot, 3, side, side), dtype=torch.float32)
        support_masks = torch.empty((self.shot, side, side), dtype=torch.int64)
        for k, position in enumerate(supports):  # written in place: no per-shot copies to stack
            s_img, s_label = self.transform(*read_pair(self.data_root, images[position]), rng, target)
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
        self.add_original(sample, raw_label, "query_mask_ori", to_binary)
        return sample
