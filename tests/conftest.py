"""Shared pytest fixtures: one small synthetic VOC dataset per test session."""
import os

import pytest

from tools.synthetic import write_voc


@pytest.fixture(scope="session")
def synthetic_voc(tmp_path_factory):
    """Root of a synthetic VOC dataset (util.synthetic, format voc), generated once per session.

    Layout: ROOT/JPEGImages, ROOT/SegmentationClassAug, lists ROOT/train.txt (240 images) and
    ROOT/val.txt (160 images), 160-224 px, seed 0; enough images per class for 5-shot episodes
    in every fold. Treat it as read-only; pass `index_cache_dir=data_cache_dir` to datasets.
    """
    root = str(tmp_path_factory.mktemp("synthetic_voc"))
    write_voc(root, train=240, val=160, min_size=160, max_size=224, seed=0, workers=1)
    return root


@pytest.fixture(scope="session")
def data_cache_dir(tmp_path_factory):
    """A session-wide directory for index caches, so tests never write into lists/cache/."""
    return str(tmp_path_factory.mktemp("index_cache"))


@pytest.fixture
def voc_lists(synthetic_voc):
    """(train list, val list) paths of the synthetic VOC dataset."""
    return os.path.join(synthetic_voc, "train.txt"), os.path.join(synthetic_voc, "val.txt")


@pytest.fixture
def tiny_dataset(tmp_path):
    """Factory writing a hand-made dataset: tiny_dataset(labels, name="list") -> (root, list path).

    `labels` are uint8 arrays; image i is random noise of the same size (JPEGImages/img{i}.jpg),
    label i is SegmentationClassAug/img{i}.png, and the list has one line per pair.
    """
    import numpy as np

    from util.fileio import atomic_write_text
    from util.data.label_io import write_jpeg_atomic, write_png_atomic

    def make(labels, name="list"):
        rng = np.random.default_rng(0)
        lines = []
        for i, label in enumerate(labels):
            image = rng.integers(0, 256, size=label.shape + (3,), dtype=np.uint8)
            write_jpeg_atomic(str(tmp_path / "JPEGImages" / f"img{i}.jpg"), image)
            write_png_atomic(str(tmp_path / "SegmentationClassAug" / f"img{i}.png"), label.astype(np.uint8))
            lines.append(f"JPEGImages/img{i}.jpg SegmentationClassAug/img{i}.png")
        list_file = str(tmp_path / f"{name}.txt")
        atomic_write_text(list_file, "\n".join(lines) + "\n")
        return str(tmp_path), list_file

    return make
