"""Atomic writes: a crash or a full disk never leaves a half-written file in place."""
import os
import tempfile


def _atomic(path, write):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    _atomic(path, lambda f: f.write(text.encode("utf-8")))


def atomic_torch_save(obj, path):
    import torch
    _atomic(path, lambda f: torch.save(obj, f))
