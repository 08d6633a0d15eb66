"""BaseClassDataset: every image of a list, base-class labels, BAM's base-learner transforms."""
import os

import numpy as np
import pytest
import torch

from util.data.base_classes import BaseClassDataset
from util.data.collate import collate_episodes
from util.data.folds import base_lut, get_fold
from util.data.label_io import read_label, write_png_atomic
from util.data.transforms import top_left_canvas, val_resize


def base_data(root, list_file, dataset, split, mode="train", **kwargs):
    """BaseClassDataset with BAM's stage-1 sizes unless given."""
    kwargs = {"train_size": 417, "val_size": 417, "scale_range": (0.5, 2.0), "seed": 321, **kwargs}
    return BaseClassDataset(root, list_file, get_fold(dataset, split), mode, **kwargs)


def test_train_uses_every_image_with_base_labels(synthetic_voc, voc_lists):
    ds = base_data(synthetic_voc, voc_lists[0], "pascal", 1, "train", train_size=80)
    with open(voc_lists[0], encoding="utf-8") as handle:
        assert len(ds) == sum(1 for line in handle if line.strip())  # no 2048 rule, no filter
    sample = ds[0]
    assert set(sample) == {"query_img", "query_base_mask", "index", "query_name"}
    assert sample["query_img"].shape == (3, 80, 80) and sample["query_base_mask"].shape == (80, 80)
    assert sample["query_base_mask"].dtype == torch.int64
    values = set()
    for i in range(10):
        values |= set(ds[i]["query_base_mask"].unique().tolist())
    assert values <= set(range(16)) | {255}
    ds2 = base_data(synthetic_voc, voc_lists[0], "pascal", 1, "train", train_size=80)
    assert torch.equal(ds[3]["query_img"], ds2[3]["query_img"])
    ds2.set_epoch(2)
    assert not torch.equal(ds[3]["query_img"], ds2[3]["query_img"])


def test_val_adds_original_resolution_base_mask(synthetic_voc, voc_lists):
    ds = base_data(synthetic_voc, voc_lists[1], "pascal", 0, "val", val_size=120)
    lut = base_lut(get_fold("pascal", 0).base)
    samples = [ds[i] for i in range(3)]
    for i, sample in enumerate(samples):
        raw = read_label(os.path.join(synthetic_voc, ds.pairs[i][1]))
        _, resized = val_resize(np.zeros(raw.shape + (3,), np.float32), raw, 120)
        assert torch.equal(sample["query_base_mask"], torch.from_numpy(lut[resized].astype(np.int64)))
        assert torch.equal(sample["query_base_mask_ori"],
                           torch.from_numpy(top_left_canvas(lut[raw]).astype(np.int64)))
        assert sample["ori_size"].tolist() == list(raw.shape)
    batch = collate_episodes(samples)
    assert batch["query_img"].shape == (3, 3, 120, 120) and batch["query_base_mask_ori"].dim() == 3
    assert "query_base_mask_ori" not in base_data(synthetic_voc, voc_lists[1], "pascal", 0, "val",
                                                     ori_resize=False)[0]


def test_coco_base_labels_have_60_classes(tiny_dataset):
    label = np.zeros((40, 40), np.uint8)
    label[:10], label[10:20], label[20:30] = 2, 1, 80  # fold 0 interleaved: 1 novel, 2 and 80 base
    root, list_file = tiny_dataset([label])
    sample = base_data(root, list_file, "coco", 0, "val", val_size=40)[0]
    assert sorted(sample["query_base_mask_ori"].unique().tolist()) == [0, 1, 60]


def test_errors(tiny_dataset, tmp_path):
    label = np.zeros((40, 40), np.uint8)
    label[:5] = 21
    root, list_file = tiny_dataset([label])
    ds = base_data(root, list_file, "pascal", 0, "train", train_size=32)
    with pytest.raises(ValueError, match=r"label .*img0.png under .* contains value 21; expected 0..20 or 255"):
        ds[0]
    write_png_atomic(os.path.join(root, "SegmentationClassAug", "img0.png"), np.zeros((30, 40), np.uint8))
    with pytest.raises(ValueError, match=r"label .*img0.png is 40x30 but image .*img0.jpg is 40x40"):
        ds[0]
    with pytest.raises(IndexError):
        ds[1]
    with pytest.raises(FileNotFoundError, match="data_root .* does not exist"):
        base_data(str(tmp_path / "none"), list_file, "pascal", 0)
    with pytest.raises(ValueError, match="mode 'eval' is invalid"):
        base_data(root, list_file, "pascal", 0, "eval")
