"""Per-fold index: the 2048 rule, the BAM filter, per-class lists, the cache, the CLI, errors."""
import glob
import json
import os
import shutil

import numpy as np
import pytest

from tools import index as index_cli
from util.data.folds import get_fold
from util.data.index import build_fold_index, load_fold_index
from util.fileio import REPO_ROOT
from util.data.label_stats import compute_label_stats


def _label(parts, shape=(64, 64)):
    """A label with `pixels` pixels of each class, filled row-major from the top-left."""
    label = np.zeros(shape, dtype=np.uint8)
    flat, start = label.reshape(-1), 0
    for cls, pixels in parts:
        flat[start:start + pixels] = cls
        start += pixels
    return label


# Fold 0 of Pascal: novel 1..5, base 6..20.
LABELS = [
    _label([(6, 2048)]),                     # 0: counts exactly at 2048
    _label([(7, 2047)]),                     # 1: one pixel short
    _label([(6, 2048), (8, 100)]),           # 2: 8 present but too small to count
    _label([(6, 3000), (1, 10)]),            # 3: a few novel pixels: BAM drops it
    _label([(1, 3000)]),                     # 4: novel only
    _label([(255, 500), (9, 2500)]),         # 5: 255 does not trigger the filter
    _label([(6, 2048), (2, 2048)]),          # 6: base and novel both counting
]


@pytest.fixture
def hand_made(tiny_dataset, tmp_path):
    root, list_file = tiny_dataset(LABELS)
    return root, list_file, str(tmp_path / "cache")


def _names(index):
    return [os.path.basename(img) for img, _ in index.images]


def test_2048_rule_and_filter_on(hand_made):
    root, list_file, cache = hand_made
    train = load_fold_index(root, list_file, get_fold("pascal", 0), "train", cache_dir=cache)
    assert _names(train) == ["img0.jpg", "img2.jpg", "img5.jpg"]
    assert train.class_files[6].tolist() == [0, 1]
    assert train.class_files[7].tolist() == [] and train.class_files[8].tolist() == []
    assert train.class_files[9].tolist() == [2]
    # the query's candidate targets are every base class present, whatever its size
    assert train.present(1) == {6: 2048, 8: 100}


def test_filter_off_keeps_images_with_novel_classes(hand_made):
    root, list_file, cache = hand_made
    train = load_fold_index(root, list_file, get_fold("pascal", 0), "train", filter_novel=False,
                            cache_dir=cache)
    assert _names(train) == ["img0.jpg", "img2.jpg", "img3.jpg", "img5.jpg", "img6.jpg"]
    assert train.class_files[6].tolist() == [0, 1, 2, 4]
    assert train.present(2) == {6: 3000}  # the novel class is never a train target


def test_val_index_uses_novel_classes_and_ignores_the_filter(hand_made):
    root, list_file, cache = hand_made
    for filter_novel in (True, False):
        val = load_fold_index(root, list_file, get_fold("pascal", 0), "val", filter_novel=filter_novel,
                              cache_dir=cache)
        assert _names(val) == ["img4.jpg", "img6.jpg"]
        assert val.class_files[1].tolist() == [0] and val.class_files[2].tolist() == [1]
        assert val.present(1) == {2: 2048}


def test_cache_is_reused_and_holds_no_paths(hand_made):
    root, list_file, cache = hand_made
    cold = compute_label_stats(list_file, root, cache_dir=cache)
    warm = compute_label_stats(list_file, root, cache_dir=cache)
    assert not cold.from_cache and warm.from_cache
    assert warm.pairs == cold.pairs
    for name in ("offsets", "values", "pixels"):
        np.testing.assert_array_equal(getattr(warm, name), getattr(cold, name))
    files = os.listdir(cache)
    assert len(files) == 1 and files[0].startswith("list-") and files[0].endswith(".json")
    text = open(os.path.join(cache, files[0]), encoding="utf-8").read()
    assert root not in text and "SegmentationClassAug" not in text
    json.loads(text)  # plain JSON


def test_cache_key_follows_list_content_and_data_root(hand_made, tmp_path):
    root, list_file, cache = hand_made
    compute_label_stats(list_file, root, cache_dir=cache)
    with open(list_file, "a", encoding="utf-8") as handle:
        handle.write("\n")  # same lines, different bytes: a new key, rebuilt
    assert not compute_label_stats(list_file, root, cache_dir=cache).from_cache
    moved = str(tmp_path / "moved")
    shutil.copytree(root, moved, ignore=shutil.ignore_patterns("cache"))
    again = compute_label_stats(os.path.join(moved, "list.txt"), moved, cache_dir=cache)
    assert not again.from_cache  # a moved dataset is read again and still works
    index = build_fold_index(again, get_fold("pascal", 0), "train")
    assert _names(index) == ["img0.jpg", "img2.jpg", "img5.jpg"]
    assert len(os.listdir(cache)) == 3
    assert not glob.glob(os.path.join(cache, ".tmp-*"))


def test_rebuild_and_corrupt_cache(hand_made):
    root, list_file, cache = hand_made
    compute_label_stats(list_file, root, cache_dir=cache)
    assert not compute_label_stats(list_file, root, cache_dir=cache, rebuild=True).from_cache
    path = glob.glob(os.path.join(cache, "*.json"))[0]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("{not json")
    stats = compute_label_stats(list_file, root, cache_dir=cache)
    assert not stats.from_cache and len(stats.pairs) == len(LABELS)
    assert compute_label_stats(list_file, root, cache_dir=cache).from_cache


def test_no_cache_dir_writes_nothing(hand_made):
    root, list_file, cache = hand_made
    compute_label_stats(list_file, root, cache_dir=None)
    assert not os.path.exists(cache)


def test_parallel_and_single_process_builds_agree(synthetic_voc, voc_lists):
    parallel = compute_label_stats(voc_lists[0], synthetic_voc, cache_dir=None, workers=2)
    single = compute_label_stats(voc_lists[0], synthetic_voc, cache_dir=None, workers=1)
    assert parallel.pairs == single.pairs
    for name in ("offsets", "values", "pixels"):
        np.testing.assert_array_equal(getattr(parallel, name), getattr(single, name))


def test_cli_prints_every_fold(synthetic_voc, voc_lists, data_cache_dir, capsys):
    argv = ["--config", os.path.join(REPO_ROOT, "config", "base", "pascal.yaml"), f"data_root={synthetic_voc}",
            f"train_list={voc_lists[0]}", f"val_list={voc_lists[1]}", f"index_cache_dir={data_cache_dir}"]
    assert index_cli.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    fold_lines = [line for line in out if line.startswith("fold ")]
    assert len(fold_lines) == 4
    stats = compute_label_stats(voc_lists[0], synthetic_voc, cache_dir=data_cache_dir)
    for split, line in enumerate(fold_lines):
        train = build_fold_index(stats, get_fold("pascal", split), "train")
        assert line.startswith(f"fold {split}: train {len(train.images)} images, val ")
    assert "  train per class: 6:" in out[out.index(fold_lines[0]) + 1]
    assert index_cli.main(argv + ["filter_novel=false"]) == 0
    no_filter = [line for line in capsys.readouterr().out.splitlines() if line.startswith("fold 0")]
    assert int(no_filter[0].split()[3]) > int(fold_lines[0].split()[3])  # the filter matters


# ---- errors: one line naming the file and what was expected -------------------------------

def _expect(error, match, fn):
    with pytest.raises(error, match=match) as info:
        fn()
    assert "\n" not in str(info.value)


def test_error_missing_data_root_and_list(hand_made, tmp_path):
    root, list_file, cache = hand_made
    _expect(FileNotFoundError, "data_root .*nowhere does not exist",
            lambda: compute_label_stats(list_file, str(tmp_path / "nowhere"), cache_dir=cache))
    _expect(FileNotFoundError, "list file .*missing.txt does not exist",
            lambda: compute_label_stats(str(tmp_path / "missing.txt"), root, cache_dir=cache))


def test_error_missing_label_and_image(hand_made):
    root, list_file, cache = hand_made
    os.remove(os.path.join(root, "SegmentationClassAug", "img2.png"))
    _expect(FileNotFoundError, r"list .*list.txt line 3: label .*img2.png does not exist",
            lambda: compute_label_stats(list_file, root, cache_dir=cache))
    _, list_file = _rewrite(root, list_file, 2, "JPEGImages/gone.jpg SegmentationClassAug/img1.png")
    _expect(FileNotFoundError, r"line 3: image .*gone.jpg does not exist",
            lambda: compute_label_stats(list_file, root, cache_dir=cache))


def _rewrite(root, list_file, line_index, new_line):
    lines = open(list_file, encoding="utf-8").read().splitlines()
    lines[line_index] = new_line
    with open(list_file, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return root, list_file


def test_error_unreadable_image(hand_made):
    root, list_file, cache = hand_made
    with open(os.path.join(root, "JPEGImages", "img4.jpg"), "wb") as handle:
        handle.write(b"this is not a jpeg")
    _expect(ValueError, r"line 5: image .*img4.jpg cannot be read",
            lambda: compute_label_stats(list_file, root, cache_dir=cache))


def test_error_label_size_differs_from_image(tiny_dataset, tmp_path):
    root, list_file = tiny_dataset([_label([(6, 3000)]), _label([(6, 3000)])])
    from util.data.label_io import write_png_atomic
    write_png_atomic(os.path.join(root, "SegmentationClassAug", "img1.png"), np.zeros((60, 64), np.uint8))
    _expect(ValueError, r"line 2: label .*img1.png is 64x60 but image .*img1.jpg is 64x64",
            lambda: compute_label_stats(list_file, root, cache_dir=None))


def test_error_label_values_outside_the_dataset(tiny_dataset):
    root, list_file = tiny_dataset([_label([(6, 3000)]), _label([(21, 3000)])])
    stats = compute_label_stats(list_file, root, cache_dir=None)
    _expect(ValueError, r"label .*img1.png \(list .*line 2\) contains value 21; expected 0..20 or 255",
            lambda: build_fold_index(stats, get_fold("pascal", 0), "train"))
    coco = build_fold_index(stats, get_fold("coco", 0, use_split_coco=False), "train")  # base 21..80
    assert _names(coco) == ["img1.jpg"] and coco.class_files[21].tolist() == [0]


def test_error_fold_without_usable_image(tiny_dataset):
    root, list_file = tiny_dataset([_label([(6, 3000)]), _label([(7, 100)])])
    stats = compute_label_stats(list_file, root, cache_dir=None)
    _expect(ValueError, r"fold 0 \(val\) of list .*: no image has a class of \[1, 2, 3, 4, 5\] covering 2048",
            lambda: build_fold_index(stats, get_fold("pascal", 0), "val"))


def test_error_malformed_and_duplicate_lines(hand_made):
    root, list_file, cache = hand_made
    _rewrite(root, list_file, 1, "JPEGImages/img1.jpg")
    _expect(ValueError, r"list .*line 2: expected 'IMAGE LABEL', got 'JPEGImages/img1.jpg'",
            lambda: compute_label_stats(list_file, root, cache_dir=cache))
    _rewrite(root, list_file, 1, "JPEGImages/img0.jpg SegmentationClassAug/img0.png")
    _expect(ValueError, r"list .*line 2 repeats line 1 \(JPEGImages/img0.jpg\)",
            lambda: compute_label_stats(list_file, root, cache_dir=cache))


def test_error_too_few_supports(hand_made, tiny_dataset):
    root, list_file, cache = hand_made
    train = load_fold_index(root, list_file, get_fold("pascal", 0), "train", cache_dir=cache)
    # img2 holds 100 pixels of class 8: a possible target, but no image has 8 counting
    _expect(ValueError, r"class 8 has 0 support image\(s\) besides the query, 1-shot episodes need 1",
            lambda: train.check_supports(1))
    root, list_file = tiny_dataset([_label([(6, 3000)]), _label([(6, 2500)])], "two")
    train = load_fold_index(root, list_file, get_fold("pascal", 0), "train", cache_dir=cache)
    train.check_supports(1)  # class 6: two images, one support besides the query
    _expect(ValueError, r"class 6 has 1 support image\(s\) besides the query, 2-shot episodes need 2",
            lambda: train.check_supports(2))
