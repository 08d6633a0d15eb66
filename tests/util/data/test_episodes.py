"""Episodes: the batch-dict contract, sampling rules, binarisation, base labels, determinism."""
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from util.data.collate import collate_episodes
from util.data.episodes import EpisodeDataset
from util.data.folds import base_lut, get_fold
from util.data.label_io import read_label
from util.data.transforms import top_left_canvas, val_resize


@pytest.fixture
def make(synthetic_voc, voc_lists, data_cache_dir):
    def build(mode="train", shot=1, split=0, **kwargs):
        list_file = voc_lists[0] if mode == "train" else voc_lists[1]
        kwargs = {"train_size": 96, "val_size": 96, "scale_range": (0.9, 1.1), "seed": 321, **kwargs}
        return EpisodeDataset(synthetic_voc, list_file, get_fold("pascal", split), shot, mode,
                              index_cache_dir=data_cache_dir, **kwargs)
    return build


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


def test_train_sample_matches_the_contract(make):
    ds = make("train", shot=2)
    sample = ds[0]
    assert set(sample) == {"query_img", "query_mask", "support_imgs", "support_masks", "class_id",
                           "query_base_mask", "index", "query_name", "support_names"}
    assert sample["query_img"].shape == (3, 96, 96) and sample["query_img"].dtype == torch.float32
    assert sample["query_mask"].shape == (96, 96) and sample["query_mask"].dtype == torch.int64
    assert sample["support_imgs"].shape == (2, 3, 96, 96)
    assert sample["support_masks"].shape == (2, 96, 96) and sample["support_masks"].dtype == torch.int64
    assert sample["class_id"].dtype == torch.int64 and sample["class_id"].shape == ()
    assert sample["query_base_mask"].dtype == torch.int64 and sample["index"].item() == 0
    assert isinstance(sample["query_name"], str) and len(sample["support_names"]) == 2
    assert len(ds) == len(ds.index.images)


def test_val_sample_matches_the_contract_and_collates(make):
    ds = make("val", shot=1, test_num=7)
    samples = [ds[i] for i in range(3)]
    assert {"ori_size", "query_mask_ori"} <= set(samples[0])
    batch = collate_episodes(samples)
    assert batch["query_img"].shape == (3, 3, 96, 96) and batch["support_imgs"].shape == (3, 1, 3, 96, 96)
    assert batch["class_id"].shape == (3,) and batch["ori_size"].shape == (3, 2)
    longest = max(max(s["ori_size"].tolist()) for s in samples)
    assert batch["query_mask_ori"].shape == (3, longest, longest)
    for i, s in enumerate(samples):  # padded with 255 beyond each sample's own canvas
        side = s["query_mask_ori"].shape[0]
        assert torch.equal(batch["query_mask_ori"][i, :side, :side], s["query_mask_ori"])
        assert (batch["query_mask_ori"][i, side:] == 255).all() and (batch["query_mask_ori"][i, :, side:] == 255).all()
    assert batch["query_name"] == [s["query_name"] for s in samples]
    assert "query_mask_ori" not in make("val", test_num=2, ori_resize=False)[0]


def test_sampling_rules(make):
    """Target among the query's classes of the mode's list; k distinct supports, none the query,
    each from the target's file list."""
    for mode, shot in (("train", 5), ("val", 5), ("val", 1)):
        ds = make(mode, shot=shot, test_num=300)
        base, novel = get_fold("pascal", 0).base, get_fold("pascal", 0).novel
        allowed = set(base if mode == "train" else novel)
        targets = set()
        for i in range(len(ds)):
            _, query, target, supports = ds.draw(i)
            assert query == i % len(ds.index.images)
            assert target in ds.index.present(query) and target in allowed
            assert len(supports) == shot and len(set(supports)) == shot and query not in supports
            assert set(supports) <= set(ds.index.class_files[target].tolist())
            targets.add(target)
        assert targets == allowed  # every class gets drawn


def test_val_episodes_cycle_over_the_index(make):
    ds = make("val", test_num=100)
    assert len(ds) == 100 and len(ds.index.images) < 100
    n = len(ds.index.images)
    assert [ds.draw(i)[1] for i in range(n + 3)] == list(range(n)) + [0, 1, 2]
    with pytest.raises(IndexError, match="episode 100 is out of range"):
        ds.draw(100)


def test_masks_are_binarised_with_255_kept_and_base_labels_remapped(make, synthetic_voc):
    ds = make("val", shot=1, test_num=20, val_size=200)
    lut = base_lut(get_fold("pascal", 0).base)
    for i in range(6):
        sample = ds[i]
        _, query, target, _ = ds.draw(i)
        raw = read_label(os.path.join(synthetic_voc, ds.index.images[query][1]))
        _, resized = val_resize(np.zeros(raw.shape + (3,), np.float32), raw, 200)
        expected = np.where(resized == 255, 255, (resized == target)).astype(np.int64)
        assert torch.equal(sample["query_mask"], torch.from_numpy(expected))
        assert torch.equal(sample["query_base_mask"], torch.from_numpy(lut[resized].astype(np.int64)))
        ori = np.where(raw == 255, 255, (raw == target)).astype(np.uint8)
        assert torch.equal(sample["query_mask_ori"], torch.from_numpy(top_left_canvas(ori).astype(np.int64)))
        assert sample["ori_size"].tolist() == list(raw.shape)
        assert sample["class_id"].item() == target
        assert (sample["query_mask"] == 1).any() and (sample["query_mask"] == 255).any()
        for mask in sample["support_masks"]:
            assert set(mask.unique().tolist()) <= {0, 1, 255} and (mask == 1).any()
        # novel classes never appear in the base-class mask
        assert set(sample["query_base_mask"].unique().tolist()) <= set(range(16)) | {255}


def test_train_base_mask_drops_novel_classes(make):
    ds = make("train", shot=1, filter_novel=False, train_size=128)
    seen = set()
    for i in range(12):
        seen |= set(ds[i]["query_base_mask"].unique().tolist())
    assert seen <= set(range(16)) | {255} and len(seen - {0, 255}) > 1


def test_episode_depends_on_seed_epoch_and_index_only(make):
    a, b = make("train", shot=2), make("train", shot=2)
    _assert_same(a[5], b[5])
    _ = b[3]  # what was drawn before does not matter
    _assert_same(a[4], b[4])
    b.set_epoch(1)
    assert not torch.equal(a[5]["query_img"], b[5]["query_img"])
    a.set_epoch(1)
    _assert_same(a[5], b[5])
    c = make("train", shot=2, seed=7)
    assert any(not torch.equal(a[i]["query_img"], c[i]["query_img"]) for i in range(3))


def test_val_episodes_are_fixed_per_seed(make):
    a, b = make("val", test_num=10, seed=510), make("val", test_num=10, seed=510)
    b.set_epoch(3)  # val episodes ignore the epoch
    for i in (0, 9):
        _assert_same(a[i], b[i])
    assert [make("val", test_num=10, seed=365).draw(i)[2:] for i in range(10)] != \
        [a.draw(i)[2:] for i in range(10)]


def _loader_batches(ds, workers, batch_size, count, persistent=False):
    loader = DataLoader(ds, batch_size=batch_size, sampler=list(range(count)), num_workers=workers,
                        collate_fn=collate_episodes, persistent_workers=persistent)
    return loader, [b for b in loader]


def _flatten(batches):
    out = []
    for batch in batches:
        for i in range(batch["index"].shape[0]):
            out.append({k: (v[i] if isinstance(v, torch.Tensor) else v[i]) for k, v in batch.items()})
    return out


def test_same_episodes_with_0_or_2_workers_and_any_batch_size(make):
    ds = make("train", shot=1, train_size=64)
    _, serial = _loader_batches(ds, 0, 2, 6)  # a short epoch keeps the test fast
    _, parallel = _loader_batches(ds, 2, 3, 6)
    for x, y in zip(_flatten(serial), _flatten(parallel), strict=True):
        _assert_same(x, y)


def test_set_epoch_reaches_persistent_workers(make):
    ds = make("train", shot=1, train_size=64)
    loader, first = _loader_batches(ds, 2, 2, 4, persistent=True)
    ds.set_epoch(1)
    second = list(loader)
    reference = make("train", shot=1, train_size=64)
    reference.set_epoch(1)
    for x, y in zip(_flatten(second), [reference[i] for i in range(4)], strict=True):
        _assert_same(x, y)
    assert not torch.equal(first[0]["query_img"], second[0]["query_img"])


def test_bad_arguments(make, synthetic_voc, voc_lists, data_cache_dir):
    with pytest.raises(ValueError, match="mode 'test' is invalid"):
        make("test")
    with pytest.raises(ValueError, match="shot must be >= 1"):
        make("train", shot=0)
    with pytest.raises(ValueError, match="test_num must be >= 1"):
        make("val", test_num=0)
    with pytest.raises(ValueError, match=r"scale_range \(1.2, 0.8\) is invalid"):
        make("train", scale_range=(1.2, 0.8))
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        make("train").set_epoch(-1)
    with pytest.raises(ValueError, match="besides the query, 50-shot episodes need 50"):
        make("val", shot=50)
    with pytest.raises(FileNotFoundError, match="list file .*nope.txt does not exist"):
        EpisodeDataset(synthetic_voc, voc_lists[0] + "nope.txt", get_fold("pascal", 0), 1, "train",
                       train_size=96, val_size=96, scale_range=(0.9, 1.1), seed=0,
                       index_cache_dir=data_cache_dir)


def test_missing_image_at_sample_time(make, synthetic_voc, tmp_path):
    ds = make("train")
    ds.data_root = str(tmp_path)  # files gone after the index was built
    with pytest.raises(FileNotFoundError, match=r"image .*JPEGImages/.*\.jpg does not exist"):
        ds[0]
