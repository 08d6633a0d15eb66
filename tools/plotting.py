"""What the picture commands share: matplotlib without a display, and PNG files written
atomically at a known size (figure inches x DPI pixels)."""
import io

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from util.fileio import atomic_write_bytes  # noqa: E402

DPI = 100


def figure(width, height, rows=1, columns=1):
    """A figure of width x height inches (x DPI pixels) and its grid of axes (always 2-D)."""
    return plt.subplots(rows, columns, figsize=(width, height), dpi=DPI, squeeze=False)


def save_png(fig, path):
    """Write `fig` as PNG (atomically) and close it; returns the path."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path
