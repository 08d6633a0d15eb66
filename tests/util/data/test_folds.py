"""Fold definitions and label remaps (docs/protocol.md, Folds)."""
import numpy as np
import pytest

from util.data.folds import Fold, base_lut, binary_lut, get_fold, invalid_label_values


def fold_classes(dataset, split, use_split_coco=True):
    fold = get_fold(dataset, split, use_split_coco)
    assert isinstance(fold, Fold) and (fold.dataset, fold.split) == (dataset, split)
    return list(fold.base), list(fold.novel)


def test_pascal_folds():
    for split in range(4):
        base, novel = fold_classes("pascal", split)
        assert novel == list(range(5 * split + 1, 5 * split + 6))
        assert base == sorted(set(range(1, 21)) - set(novel))
    assert fold_classes("pascal", 0)[0] == list(range(6, 21))
    assert fold_classes("pascal", 2)[0] == list(range(1, 11)) + list(range(16, 21))


def test_coco_interleaved_is_default_and_matches_pfenet_ranges():
    # PFENet writes them as range(1, 78, 4), range(2, 79, 4), range(3, 80, 4), range(4, 81, 4).
    expected = {0: range(1, 78, 4), 1: range(2, 79, 4), 2: range(3, 80, 4), 3: range(4, 81, 4)}
    for split, novel_range in expected.items():
        base, novel = fold_classes("coco", split)
        assert novel == list(novel_range) and len(novel) == 20
        assert base == sorted(set(range(1, 81)) - set(novel)) and len(base) == 60
        assert fold_classes("coco", split, use_split_coco=True) == (base, novel)


def test_coco_consecutive_alternative():
    for split in range(4):
        base, novel = fold_classes("coco", split, use_split_coco=False)
        assert novel == list(range(20 * split + 1, 20 * split + 21))
        assert base == [c for c in range(1, 81) if c not in novel]


def test_folds_partition_the_classes():
    for dataset, count in (("pascal", 20), ("coco", 80)):
        for coco_split in (True, False):
            novel_union = []
            for split in range(4):
                base, novel = fold_classes(dataset, split, coco_split)
                assert sorted(base + novel) == list(range(1, count + 1))
                novel_union += novel
            assert sorted(novel_union) == list(range(1, count + 1))


@pytest.mark.parametrize("dataset, split, message", [
    ("voc", 0, "dataset 'voc' is unknown"),
    ("pascal", 4, "split 4 is invalid"),
    ("coco", -1, "split -1 is invalid"),
])
def test_bad_fold_arguments(dataset, split, message):
    with pytest.raises(ValueError, match=message):
        fold_classes(dataset, split)


def test_binary_lut_keeps_255():
    label = np.array([[0, 3, 7], [255, 3, 20]], dtype=np.uint8)
    assert binary_lut(3)[label].tolist() == [[0, 1, 0], [255, 1, 0]]


def test_base_lut_maps_base_to_position_and_novel_to_background():
    base, novel = fold_classes("pascal", 1)  # novel 6..10
    lut = base_lut(base)
    assert lut[1] == 1 and lut[5] == 5 and lut[11] == 6 and lut[20] == 15
    assert all(lut[c] == 0 for c in novel)
    assert lut[0] == 0 and lut[255] == 255
    coco_base, _ = fold_classes("coco", 0)
    assert base_lut(coco_base)[coco_base[-1]] == 60


def test_invalid_label_values():
    invalid = invalid_label_values(20)
    assert not invalid[[0, 1, 20, 255]].any()
    assert invalid[[21, 100, 254]].all()
