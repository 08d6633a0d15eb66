"""Pascal VOC 2012 + SBD -> SegmentationClassAug label PNGs and the Pascal-5i list files.

    python -m tools.prepare_pascal --voc-root VOCdevkit/VOC2012 --sbd-root benchmark_RELEASE
        [--list-dir lists/pascal] [--sbd-splits train | train,val] [--sbd-boundaries]
        [--workers N] [--overwrite]

Writes VOC2012/SegmentationClassAug/X.png (8-bit class ids, 255 ignore) for every image of
the two lists, and the lists (paths relative to VOC2012, the data_root):
  voc_sbd_merge_noduplicate.txt  (--sbd-splits train, the default) VOC train, then the SBD
      train images that are neither in VOC val nor already listed: the community's 5953-image
      list (VOC train + SBD train_noval), what PFENet and BAM train on.
  train_aug.txt  (--sbd-splits train,val) the same with SBD val too: the 10582-image train_aug.
  val.txt  VOC val (1449 images).
Labels: VOC's palette PNGs are read as palette indices (boundaries already 255); SBD-only
images get SBD's dataset/cls/X.mat GTcls.Segmentation as it is, like the community's
SegmentationClassAug (--sbd-boundaries also sets the pixels of GTcls.Boundaries to 255, like
VOC's outlines). A VOC label wins over SBD's for an image in both. An SBD image missing from
VOC2012/JPEGImages is copied from SBD's dataset/img. Rerunning skips labels already written
with the same options (SegmentationClassAug/.prepare.json records them); other options stop
with one line unless --overwrite.
"""
import os

import numpy as np
import scipy.io

from tools.prepared import claim_label_folder, prepare_parser, record_options
from util.cli import run_main
from util.data.label_io import read_label, write_png_atomic
from util.data.lists import read_ids, write_list
from util.fileio import atomic_copy
from util.parallel import map_with_progress

TRAIN_LISTS = {("train",): "voc_sbd_merge_noduplicate.txt", ("train", "val"): "train_aug.txt"}
VAL_LIST = "val.txt"


def read_sbd_label(path, boundaries=False):
    """SBD class label (uint8 [H, W]) from dataset/cls/X.mat; boundary pixels -> 255 if asked."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SBD label {path} does not exist")
    try:
        gt = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["GTcls"]
        label = np.asarray(gt.Segmentation, dtype=np.uint8).copy()
    except (KeyError, AttributeError, ValueError, OSError) as err:
        raise ValueError(f"SBD label {path} has no GTcls.Segmentation ({err})") from None
    if boundaries:
        for boundary in np.atleast_1d(gt.Boundaries):
            dense = boundary.toarray() if hasattr(boundary, "toarray") else np.asarray(boundary)
            if dense.shape == label.shape:
                label[dense != 0] = 255
    return label


def merged_train_ids(voc_train, voc_val, sbd_lists):
    """VOC train, then SBD ids not in VOC val and not already present, first occurrence kept."""
    excluded, merged = set(voc_val), []
    seen = set()
    for image_id in voc_train + [i for ids in sbd_lists for i in ids]:
        if image_id not in seen and image_id not in excluded:
            seen.add(image_id)
            merged.append(image_id)
    return merged


def _convert(task):
    image_id, voc_root, sbd_dataset, from_voc, boundaries = task
    out = os.path.join(voc_root, "SegmentationClassAug", image_id + ".png")
    image = os.path.join(voc_root, "JPEGImages", image_id + ".jpg")
    if not os.path.isfile(image):
        source = os.path.join(sbd_dataset, "img", image_id + ".jpg")
        if from_voc or not os.path.isfile(source):
            raise FileNotFoundError(f"image {image} does not exist (nor {source})")
        atomic_copy(source, image)
    if os.path.isfile(out):
        return False
    if from_voc:
        label = read_label(os.path.join(voc_root, "SegmentationClass", image_id + ".png"))
    else:
        label = read_sbd_label(os.path.join(sbd_dataset, "cls", image_id + ".mat"), boundaries)
    write_png_atomic(out, label)
    return True


def prepare_pascal(voc_root, sbd_root, list_dir, sbd_splits=("train",), sbd_boundaries=False, workers=None,
                   overwrite=False):
    """Write SegmentationClassAug and the two lists; returns (train list path, val list path)."""
    sbd_splits = tuple(sbd_splits)
    if sbd_splits not in TRAIN_LISTS:
        raise ValueError(f"sbd_splits {sbd_splits} is invalid; expected one of {list(TRAIN_LISTS)}")
    for name, root in (("--voc-root", voc_root), ("--sbd-root", sbd_root)):
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{name} {root} does not exist or is not a directory")
    sets = os.path.join(voc_root, "ImageSets", "Segmentation")
    voc_train, voc_val = read_ids(os.path.join(sets, "train.txt")), read_ids(os.path.join(sets, "val.txt"))
    sbd_dataset = os.path.join(sbd_root, "dataset")
    sbd_lists = [read_ids(os.path.join(sbd_dataset, f"{split}.txt")) for split in sbd_splits]
    train_ids = merged_train_ids(voc_train, voc_val, sbd_lists)
    voc_ids = set(voc_train) | set(voc_val)
    tasks = [(i, voc_root, sbd_dataset, i in voc_ids, sbd_boundaries) for i in train_ids + voc_val]
    labels = os.path.join(voc_root, "SegmentationClassAug")
    options = {"sbd_boundaries": sbd_boundaries}
    claim_label_folder(labels, options, [os.path.join(labels, t[0] + ".png") for t in tasks], overwrite,
                       f"--sbd-boundaries {'on' if sbd_boundaries else 'off'}")
    written = sum(map_with_progress(_convert, tasks, workers, "SegmentationClassAug", chunksize=16,
                                    ordered=False))
    record_options(labels, options)
    print(f"labels: {written} written, {len(tasks) - written} already there; "
          f"train list {len(train_ids)} images, val list {len(voc_val)} images")
    return tuple(write_list(os.path.join(list_dir, name),
                            [f"JPEGImages/{i}.jpg SegmentationClassAug/{i}.png" for i in ids])
                 for name, ids in ((TRAIN_LISTS[sbd_splits], train_ids), (VAL_LIST, voc_val)))


def main(argv=None):
    """Command line of prepare_pascal (see the module docstring)."""
    parser = prepare_parser("tools.prepare_pascal", __doc__, "pascal")
    parser.add_argument("--voc-root", required=True, help="VOCdevkit/VOC2012 (becomes the data_root)")
    parser.add_argument("--sbd-root", required=True, help="SBD's benchmark_RELEASE (holds dataset/)")
    parser.add_argument("--sbd-splits", default="train", choices=("train", "train,val"),
                        help="SBD lists merged into the train list (default: train, the 5953-image list)")
    parser.add_argument("--sbd-boundaries", action="store_true",
                        help="set SBD's GTcls.Boundaries pixels to 255 (default: SBD's labels as they are)")
    args = parser.parse_args(argv)
    prepare_pascal(args.voc_root, args.sbd_root, args.list_dir, tuple(args.sbd_splits.split(",")),
                   args.sbd_boundaries, args.workers, args.overwrite)
    return 0


if __name__ == "__main__":
    run_main(main)
