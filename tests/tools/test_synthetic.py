"""The synthetic generator: real formats, deterministic, classes apart, the 2048 rule matters."""
import filecmp
import json
import os

import numpy as np

import tools.synthetic as synthetic
from tools.synthetic.__main__ import main as synthetic_main
from util.data.folds import get_fold
from util.data.label_io import read_label
from tools.synthetic.scene import class_look


def test_voc_layout_is_deterministic(tmp_path, capsys):
    a, b, c = (str(tmp_path / n) for n in "abc")
    assert synthetic_main(["--out", a, "--format", "voc", "--train", "6", "--val", "3",
                           "--min-size", "96", "--max-size", "128", "--workers", "1"]) == 0
    assert capsys.readouterr().out.split() == [os.path.join(a, "train.txt"), os.path.join(a, "val.txt")]
    synthetic.write_voc(b, train=6, val=3, min_size=96, max_size=128, seed=0, workers=2)
    synthetic.write_voc(c, train=6, val=3, min_size=96, max_size=128, seed=1, workers=1)
    for rel in ("train.txt", "JPEGImages/train_000004.jpg", "SegmentationClassAug/val_000002.png"):
        assert filecmp.cmp(os.path.join(a, rel), os.path.join(b, rel), shallow=False)
    assert not filecmp.cmp(os.path.join(a, "JPEGImages/train_000004.jpg"),
                           os.path.join(c, "JPEGImages/train_000004.jpg"), shallow=False)
    with open(os.path.join(a, "val.txt"), encoding="utf-8") as handle:
        assert handle.read().splitlines()[0] == "JPEGImages/val_000000.jpg SegmentationClassAug/val_000000.png"


def test_labels_exercise_the_protocol_rules(synthetic_voc, voc_lists):
    base = get_fold("pascal", 0).base
    small, mixed, bands, mains = 0, 0, 0, set()
    with open(voc_lists[0], encoding="utf-8") as handle:
        pairs = [line.split() for line in handle if line.strip()]
    for k, (_, label_rel) in enumerate(pairs[:100]):
        label = read_label(os.path.join(synthetic_voc, label_rel))
        values, counts = np.unique(label, return_counts=True)
        assert set(values.tolist()) <= set(range(21)) | {255}
        present = {int(v): int(n) for v, n in zip(values, counts) if 0 < v < 255}
        bands += 255 in values
        small += any(n < 2048 for n in present.values())
        mixed += bool(set(present) - set(base)) and bool(set(present) & set(base))
        if present.get(k % 20 + 1, 0) >= 2048:
            mains.add(k % 20 + 1)
    assert bands == 100  # every object outline carries a 255 band, as in VOC
    assert small >= 10 and mixed >= 10  # the 2048 rule and the BAM filter both have work to do
    assert mains == set(range(1, 21))  # each class is the large object of some images


def test_classes_look_different():
    for count in (20, 80):
        looks = [class_look(c, count) for c in range(1, count + 1)]
        keys = {(shape, tuple(colour.tolist()), texture) for shape, colour, texture in looks}
        assert len(keys) == count
        for shape in {look[0] for look in looks}:  # same shape: the colours differ
            colours = [tuple(look[1].tolist()) for look in looks if look[0] == shape]
            assert len(set(colours)) == len(colours)


def test_coco_json_uses_real_category_ids_polygons_and_rle(tmp_path):
    train_json, val_json = synthetic.write_coco(str(tmp_path), train=30, val=5, min_size=96,
                                                max_size=128, seed=0, workers=1)
    doc = json.load(open(train_json, encoding="utf-8"))
    ids = [c["id"] for c in doc["categories"]]
    assert ids == synthetic.COCO_CATEGORY_IDS and len(ids) == 80 and ids[-1] == 90 and 12 not in ids
    kinds = {(a["iscrowd"], type(a["segmentation"]).__name__) for a in doc["annotations"]}
    assert kinds == {(0, "list"), (1, "dict")}
    assert all(os.path.isfile(tmp_path / "train2014" / im["file_name"]) for im in doc["images"])
    assert len({a["image_id"] for a in doc["annotations"]}) == 29  # image 24 has no annotation
    assert os.path.isfile(val_json)
