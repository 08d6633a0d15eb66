"""Reading images and label maps (one by one or as a list entry), and writing them atomically.

Labels are single-channel maps of class ids. VOC's own SegmentationClass PNGs are palette
images whose pixel values are palette indices; they are read as indices (through PIL), never
converted to colours or luminance.
"""
import io
import os

import cv2
import numpy as np
from PIL import Image

from util.fileio import atomic_write_bytes

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_PALETTE_COLOUR_TYPE = 3


def _read_bytes(path, what):
    try:
        return np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise FileNotFoundError(f"{what} {path} is a directory, expected a file") from None


_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"


def read_image(path):
    """Read an image file as float32 RGB [H, W, 3] (grey images are expanded to three channels).
    A JPEG must end with its end-of-image marker: OpenCV decodes a truncated one into a silently
    grey-filled image."""
    data = _read_bytes(path, "image")
    if data[:2].tobytes() == _JPEG_START and _JPEG_END not in data[-32:].tobytes():
        raise ValueError(f"image {path} is truncated (the JPEG has no end marker)")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ValueError(f"image {path} cannot be decoded (corrupt or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32)


def read_label(path):
    """Read a label map as uint8 [H, W] class ids; palette PNGs give their palette indices."""
    data = _read_bytes(path, "label")
    # byte 25 of a PNG is the colour type of its IHDR chunk; 3 means palette
    if data.size > 25 and data[:8].tobytes() == _PNG_SIGNATURE and data[25] == _PNG_PALETTE_COLOUR_TYPE:
        try:
            with Image.open(io.BytesIO(data.tobytes())) as img:
                label = np.asarray(img)
        except OSError:
            raise ValueError(f"label {path} cannot be decoded (corrupt PNG)") from None
    else:
        label = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if label is None:
            raise ValueError(f"label {path} cannot be decoded (corrupt or not an image)")
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError(f"label {path} is {label.dtype} with shape {label.shape}; "
                         "expected a single-channel 8-bit map of class ids")
    return label


def image_size(path):
    """(height, width) of an image from its header only (fast, no decoding)."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except FileNotFoundError:
        raise FileNotFoundError(f"image {path} does not exist") from None
    except (OSError, SyntaxError, ValueError):
        raise ValueError(f"image {path} cannot be read (corrupt or not an image)") from None
    return height, width


def read_pair(data_root, pair):
    """Read (image float32 RGB [H, W, 3], label uint8 [H, W]) of a list entry; sizes must agree."""
    image_path, label_path = (os.path.join(data_root, p) for p in pair)
    image, label = read_image(image_path), read_label(label_path)
    if image.shape[:2] != label.shape:
        raise ValueError(f"label {label_path} is {label.shape[1]}x{label.shape[0]} but image "
                         f"{image_path} is {image.shape[1]}x{image.shape[0]} (width x height)")
    return image, label


def image_id(pair):
    """The image's file name without directory and extension (e.g. 2007_000032)."""
    return os.path.splitext(os.path.basename(pair[0]))[0]


def write_png_atomic(path, array):
    """Encode a uint8 array (label [H, W] or RGB image [H, W, 3]) as PNG and write it atomically."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"cannot encode {path} as PNG")
    atomic_write_bytes(path, encoded.tobytes())


def write_jpeg_atomic(path, rgb, quality=92):
    """Encode a uint8 RGB image as JPEG and write it atomically."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode {path} as JPEG")
    atomic_write_bytes(path, encoded.tobytes())
