"""Where the repository is, and atomic writes: a crash or a full disk never leaves a
half-written file in place (write a temporary file in the same directory, then os.replace)."""
import json
import os
import shutil
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _atomic(path, write):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, payload):
    _atomic(path, lambda f: f.write(payload))


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj):
    """Compact JSON."""
    atomic_write_bytes(path, json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def atomic_torch_save(obj, path):
    import torch
    _atomic(path, lambda f: torch.save(obj, f))


def atomic_copy(source, path):
    """Copy the file `source` to `path`."""
    with open(source, "rb") as src:
        _atomic(path, lambda f: shutil.copyfileobj(src, f))
