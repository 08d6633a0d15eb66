"""From raw trees to list files: tools.prepare_pascal (VOC + SBD) and tools.prepare_coco, the
options record of a label folder, and one line for every broken input."""
import json
import os
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from util.data.label_io import read_label
from tools.prepare_coco import decode_segmentation, prepare_coco, render_label
from tools.prepare_pascal import merged_train_ids, prepare_pascal, read_sbd_label
from tools.synthetic import COCO_CATEGORY_IDS, write_coco
from tools.synthetic.voc_raw import raw_id_sets, write_voc_raw


@pytest.fixture(scope="module")
def raw_trees(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("raw"))
    voc, sbd = write_voc_raw(out, train=45, val=15, min_size=96, max_size=128, seed=1, workers=1)
    return voc, sbd, raw_id_sets(45, 15)


@pytest.fixture
def fresh_trees(raw_trees, tmp_path):
    """A private copy of the raw trees (prepare writes into VOC2012)."""
    voc, sbd, ids = raw_trees
    root = str(tmp_path / "copy")
    shutil.copytree(os.path.dirname(os.path.dirname(voc)), root)
    return os.path.join(root, "VOCdevkit", "VOC2012"), os.path.join(root, "benchmark_RELEASE"), ids


def _list_ids(path):
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    for line in lines:
        image, label = line.split()
        stem = os.path.basename(image)[:-4]
        assert image == f"JPEGImages/{stem}.jpg" and label == f"SegmentationClassAug/{stem}.png"
    return [os.path.basename(line.split()[0])[:-4] for line in lines]


def test_merge_rule():
    assert merged_train_ids(["a", "b"], ["v"], [["b", "v", "c", "c"], ["d", "a"]]) == ["a", "b", "c", "d"]


def test_pascal_lists_and_labels(fresh_trees, tmp_path, capsys):
    voc, sbd, (voc_train, voc_val, sbd_train, sbd_val) = fresh_trees
    lists = str(tmp_path / "lists")
    train_list, val_list = prepare_pascal(voc, sbd, lists, workers=2)
    train = _list_ids(train_list)
    assert train[: len(voc_train)] == voc_train
    assert len(train) == len(set(train)) and not set(train) & set(voc_val)
    assert set(train) == set(voc_train) | (set(sbd_train) - set(voc_val))
    assert _list_ids(val_list) == voc_val
    assert "labels: %d written" % (len(train) + len(voc_val)) in capsys.readouterr().out
    # VOC labels: palette indices, never colours or luminance
    name = voc_train[0]
    palette_png = os.path.join(voc, "SegmentationClass", name + ".png")
    indices = np.asarray(Image.open(palette_png))
    written = read_label(os.path.join(voc, "SegmentationClassAug", name + ".png"))
    np.testing.assert_array_equal(written, indices)
    assert (indices == 255).any() and not np.array_equal(cv2.imread(palette_png, cv2.IMREAD_GRAYSCALE), indices)
    # SBD-only labels: GTcls.Segmentation as it is, as the community's SegmentationClassAug
    sbd_only = next(i for i in train if i not in voc_train)
    mat = os.path.join(sbd, "dataset", "cls", sbd_only + ".mat")
    written = read_label(os.path.join(voc, "SegmentationClassAug", sbd_only + ".png"))
    np.testing.assert_array_equal(written, read_sbd_label(mat))
    assert not (written == 255).any() and (read_sbd_label(mat, boundaries=True) == 255).any()
    # rerunning skips finished labels
    prepare_pascal(voc, sbd, lists, workers=1)
    assert "labels: 0 written" in capsys.readouterr().out
    assert os.path.basename(train_list) == "voc_sbd_merge_noduplicate.txt"


def test_pascal_train_aug_and_boundaries(fresh_trees, tmp_path):
    voc, sbd, (voc_train, voc_val, sbd_train, sbd_val) = fresh_trees
    sbd_only = next(i for i in sbd_train if i not in voc_train and i not in voc_val)
    os.remove(os.path.join(voc, "JPEGImages", sbd_only + ".jpg"))  # copied back from SBD's img/
    lists = str(tmp_path / "l")
    train_list, _ = prepare_pascal(voc, sbd, lists, ("train", "val"), sbd_boundaries=True, workers=1)
    assert os.path.basename(train_list) == "train_aug.txt"  # never under the 5953-image list's name
    train = _list_ids(train_list)
    assert set(train) == (set(voc_train) | set(sbd_train) | set(sbd_val)) - set(voc_val)
    assert os.path.isfile(os.path.join(voc, "JPEGImages", sbd_only + ".jpg"))
    mat = os.path.join(sbd, "dataset", "cls", sbd_only + ".mat")
    written = read_label(os.path.join(voc, "SegmentationClassAug", sbd_only + ".png"))
    np.testing.assert_array_equal(written, read_sbd_label(mat, boundaries=True))
    # other options on the same labels: one line, nothing changed; --overwrite rewrites them
    with pytest.raises(ValueError, match=r"SegmentationClassAug holds labels written with other options "
                                         r"\(sbd_boundaries: True -> False; this run: --sbd-boundaries off\); "
                                         r"add --overwrite"):
        prepare_pascal(voc, sbd, lists, workers=1)
    np.testing.assert_array_equal(read_label(os.path.join(voc, "SegmentationClassAug", sbd_only + ".png")), written)
    prepare_pascal(voc, sbd, lists, ("train", "val"), workers=1, overwrite=True)
    rewritten = read_label(os.path.join(voc, "SegmentationClassAug", sbd_only + ".png"))
    np.testing.assert_array_equal(rewritten, read_sbd_label(mat))


def test_pascal_errors(fresh_trees, tmp_path):
    voc, sbd, (voc_train, voc_val, sbd_train, _) = fresh_trees
    with pytest.raises(FileNotFoundError, match="--voc-root .*nowhere does not exist"):
        prepare_pascal(str(tmp_path / "nowhere"), sbd, str(tmp_path / "l"))
    sbd_only = next(i for i in sbd_train if i not in voc_train and i not in voc_val)
    os.remove(os.path.join(sbd, "dataset", "cls", sbd_only + ".mat"))
    with pytest.raises(FileNotFoundError, match=r"SBD label .*\.mat does not exist"):
        prepare_pascal(voc, sbd, str(tmp_path / "l"), workers=1)
    os.remove(os.path.join(voc, "ImageSets", "Segmentation", "val.txt"))
    with pytest.raises(FileNotFoundError, match="id list .*val.txt does not exist"):
        prepare_pascal(voc, sbd, str(tmp_path / "l"))


# ---- COCO -------------------------------------------------------------------------------

def _square(x, y, side):
    return [[x, y, x + side, y, x + side, y + side, x, y + side]]


def test_decode_polygon_and_rle():
    polygon = decode_segmentation(_square(2, 2, 4), 10, 10)
    assert polygon.shape == (10, 10) and polygon[3:6, 3:6].all() and not polygon[0].any()
    mask = np.zeros((10, 10), np.uint8)
    mask[1:4, 5:9] = 1
    compressed = mask_utils.encode(np.asfortranarray(mask))
    np.testing.assert_array_equal(decode_segmentation(compressed, 10, 10), mask)
    flat = mask.flatten(order="F")
    runs, current, count = [], 0, 0
    for value in flat:
        if value != current:
            runs.append(count)
            current, count = value, 0
        count += 1
    runs.append(count)
    np.testing.assert_array_equal(decode_segmentation({"counts": runs, "size": [10, 10]}, 10, 10), mask)


def test_overlap_and_crowd_rules():
    big, small = (3, _square(0, 0, 20), 0, 400.0), (7, _square(5, 5, 4), 0, 16.0)
    crowd = (9, _square(10, 10, 15), 1, 225.0)
    for order in ([big, small], [small, big]):  # the smaller instance is on top either way
        label = render_label(30, 30, order)
        assert label[7, 7] == 7 and label[1, 1] == 3 and label[25, 25] == 0
    label = render_label(30, 30, [crowd, big, small], crowd="class")
    assert label[15, 15] == 3 and label[22, 22] == 9  # instances cover the crowd region
    label = render_label(30, 30, [crowd, big, small], crowd="ignore")
    assert label[15, 15] == 3 and label[22, 22] == 255


def test_prepare_coco(tmp_path, capsys):
    root = str(tmp_path / "coco")
    write_coco(root, train=30, val=26, min_size=96, max_size=128, seed=2, workers=1)
    train_list, val_list = prepare_coco(root, str(tmp_path / "lists"), workers=2)
    doc = json.load(open(os.path.join(root, "annotations", "instances_val2014.json"), encoding="utf-8"))
    annotated = {a["image_id"] for a in doc["annotations"]}
    assert len(annotated) < len(doc["images"])  # the synthetic set has unannotated images
    with open(val_list, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    expected = sorted(im["file_name"] for im in doc["images"] if im["id"] in annotated)
    assert [line.split()[0] for line in lines] == [f"val2014/{name}" for name in expected]
    assert lines[0] == f"val2014/{expected[0]} annotations/val2014/{expected[0][:-4]}.png"
    to_class = {cid: k + 1 for k, cid in enumerate(COCO_CATEGORY_IDS)}
    assert to_class[90] == 80 and to_class[13] == 12
    image = next(im for im in doc["images"] if im["id"] in annotated)
    instances = [(to_class[a["category_id"]], a["segmentation"], a["iscrowd"], a["area"])
                 for a in doc["annotations"] if a["image_id"] == image["id"]]
    label = read_label(os.path.join(root, "annotations", "val2014", image["file_name"][:-4] + ".png"))
    np.testing.assert_array_equal(label, render_label(image["height"], image["width"], instances))
    assert set(np.unique(label).tolist()) <= set(range(81))
    assert "26 annotated images" not in capsys.readouterr().out  # one val image has no annotation
    prepare_coco(root, str(tmp_path / "lists"), workers=1)
    assert "0 labels written" in capsys.readouterr().out


def test_prepare_coco_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--coco-root .* does not exist"):
        prepare_coco(str(tmp_path / "none"), str(tmp_path))
    os.makedirs(tmp_path / "c" / "annotations")
    with pytest.raises(FileNotFoundError, match=r"COCO annotation file .*instances_train2014.json does not exist"):
        prepare_coco(str(tmp_path / "c"), str(tmp_path))


def test_prepare_coco_records_its_crowd_option(tmp_path, capsys):
    root = str(tmp_path / "coco")
    write_coco(root, train=12, val=6, min_size=96, max_size=128, seed=3, workers=1)
    prepare_coco(root, str(tmp_path / "lists"), workers=1)
    with pytest.raises(ValueError, match=r"train2014 holds labels written with other options \(crowd: "
                                         r"'class' -> 'ignore'; this run: --crowd ignore\); add --overwrite"):
        prepare_coco(root, str(tmp_path / "lists"), crowd="ignore", workers=1)
    capsys.readouterr()
    prepare_coco(root, str(tmp_path / "lists"), crowd="ignore", workers=1, overwrite=True)
    assert "0 labels written" not in capsys.readouterr().out  # rewritten with the new rule


def _broken_json(tmp_path, edit):
    root = tmp_path / "broken"
    write_coco(str(root), train=3, val=2, min_size=96, max_size=128, seed=4, workers=1)
    path = root / "annotations" / "instances_train2014.json"
    doc = json.load(open(path, encoding="utf-8"))
    text = edit(doc)
    path.write_text(text if isinstance(text, str) else json.dumps(doc), encoding="utf-8")
    return str(root)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("categories"), r"expected a list under 'categories'"),
    (lambda d: d.pop("annotations"), r"expected a list under 'annotations'"),
    (lambda d: d["images"][0].pop("height"), r"images\[0\] \(id \d+\) has no height"),
    (lambda d: d["images"][0].update(width=0), r"image \d+ has height \d+ and width 0"),
    (lambda d: "[1, 2]", r"expected a JSON object .* got a list"),
    (lambda d: '{"images": [', r"not valid JSON \(Expecting value at line 1"),
    (lambda d: d["annotations"][0].update(segmentation=[[1.0, 2.0, 3.0]]),
     r"annotation \d+: a polygon must list at least 3 x, y pairs"),
    (lambda d: d["annotations"][0].update(category_id=12), r"annotation \d+ has unknown category_id 12"),
    (lambda d: d["annotations"][0].update(image_id=99999), r"annotation \d+ refers to image 99999, which is not listed"),
])
def test_broken_coco_json_is_one_line_naming_the_file(tmp_path, edit, message):
    root = _broken_json(tmp_path, edit)
    with pytest.raises(ValueError, match=r"instances_train2014.json: " + message) as info:
        prepare_coco(root, str(tmp_path / "lists"), workers=1)
    assert "\n" not in str(info.value)
