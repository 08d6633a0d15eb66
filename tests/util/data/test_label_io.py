"""Reading images and labels: palette PNGs as indices, clear errors, atomic writes."""
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from util.fileio import atomic_write_text
from util.data.label_io import image_size, read_image, read_label, write_png_atomic
from tools.synthetic.voc_raw import voc_palette


def test_palette_png_gives_indices_not_luminance(tmp_path):
    indices = np.array([[0, 1, 15], [255, 20, 0]], dtype=np.uint8)
    path = str(tmp_path / "voc.png")
    img = Image.fromarray(indices, mode="P")
    img.putpalette(voc_palette())
    img.save(path)
    np.testing.assert_array_equal(read_label(path), indices)
    assert not np.array_equal(cv2.imread(path, cv2.IMREAD_GRAYSCALE), indices)  # the classic bug


def test_grey_png_label(tmp_path):
    label = np.array([[0, 5], [255, 20]], dtype=np.uint8)
    write_png_atomic(str(tmp_path / "l.png"), label)
    np.testing.assert_array_equal(read_label(str(tmp_path / "l.png")), label)


def test_label_errors(tmp_path):
    cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"label .*rgb.png is uint8 with shape \(4, 4, 3\); expected a single-channel"):
        read_label(str(tmp_path / "rgb.png"))
    cv2.imwrite(str(tmp_path / "deep.png"), np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match="deep.png is uint16"):
        read_label(str(tmp_path / "deep.png"))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ValueError, match="bad.png cannot be decoded"):
        read_label(str(tmp_path / "bad.png"))
    with pytest.raises(FileNotFoundError, match="label .*none.png does not exist"):
        read_label(str(tmp_path / "none.png"))


def test_read_image_is_rgb_float32(tmp_path):
    bgr = np.zeros((3, 5, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    image = read_image(str(tmp_path / "red.png"))
    assert image.dtype == np.float32 and image.shape == (3, 5, 3)
    assert (image[..., 0] == 200).all() and (image[..., 1:] == 0).all()
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((3, 5), 9, np.uint8))
    assert read_image(str(tmp_path / "grey.png")).shape == (3, 5, 3)
    assert image_size(str(tmp_path / "red.png")) == (3, 5)
    (tmp_path / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="image .*x.jpg cannot be decoded"):
        read_image(str(tmp_path / "x.jpg"))
    with pytest.raises(FileNotFoundError, match="image .*y.jpg does not exist"):
        read_image(str(tmp_path / "y.jpg"))


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    atomic_write_text(str(tmp_path / "d" / "a.txt"), "one")
    atomic_write_text(str(tmp_path / "d" / "a.txt"), "two")
    assert os.listdir(tmp_path / "d") == ["a.txt"] and (tmp_path / "d" / "a.txt").read_text() == "two"
