"""Where the repository is, and atomic writes: a crash or a full disk never leaves a
half-written file in place (write a temporary file in the same directory, then os.replace)."""
import json
import math
import os
import shutil
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file


class WriteError(OSError):
    """A file could not be written (full disk, no permission, not a directory ...)."""


def _atomic(path, write):
    """Write through a temporary file in the target's folder, then os.replace; the file gets
    the usual permissions (mkstemp's are 0600). Failures raise one WriteError line."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "is a directory")
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException as err:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, (OSError, RuntimeError)):  # torch.save reports a full disk as RuntimeError
            reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
            raise WriteError(f"{path}: cannot be written ({reason}); check the free space and the "
                             "permissions of its folder") from None
        raise


def atomic_write_bytes(path, payload):
    _atomic(path, lambda f: f.write(payload))


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj):
    """`obj` with NaN and infinities as None (JSON has no such numbers), tuples as lists and
    mapping keys as strings."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path, obj, indent=None):
    """Strict JSON (non-finite numbers become null); compact unless `indent` is given."""
    separators = (",", ":") if indent is None else None
    text = json.dumps(json_safe(obj), separators=separators, indent=indent, allow_nan=False)
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path):
    import torch
    _atomic(path, lambda f: torch.save(obj, f))


def atomic_copy(source, path):
    """Copy the file `source` to `path`."""
    with open(source, "rb") as src:
        _atomic(path, lambda f: shutil.copyfileobj(src, f))
