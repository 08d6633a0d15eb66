"""List files: one `IMAGE LABEL` pair per line, paths relative to the data root (the format of
the community's Pascal and COCO lists), and id lists (one image id per line, as VOC's and
SBD's ImageSets)."""
import os

from util.fileio import atomic_write_text


def read_list_bytes(list_file):
    """Raw bytes of a list file, with a one-line error when it is missing."""
    if not os.path.isfile(list_file):
        raise FileNotFoundError(f"list file {list_file} does not exist")
    with open(list_file, "rb") as handle:
        return handle.read()


def _decode(raw, list_file):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"list {list_file} is not UTF-8 text (byte {err.start}); "
                         "expected 'IMAGE LABEL' lines") from None


def parse_list(raw, list_file):
    """Parse `IMAGE LABEL` lines (blank lines skipped); duplicates and malformed lines are errors."""
    fields = [line.split() for line in _decode(raw, list_file).splitlines()]
    pairs = [(f[0], f[1]) for f in fields if len(f) == 2]
    if len(pairs) == len(set(pairs)) and len(pairs) == sum(1 for f in fields if f):
        if not pairs:
            raise ValueError(f"list {list_file} has no 'IMAGE LABEL' lines")
        return pairs
    first_seen = {}  # slow path, only to name the offending line
    for line_no, f in enumerate(fields, start=1):
        if f and len(f) != 2:
            raise ValueError(f"list {list_file} line {line_no}: expected 'IMAGE LABEL', got {' '.join(f)!r}")
        if f and (f[0], f[1]) in first_seen:
            raise ValueError(f"list {list_file} line {line_no} repeats line {first_seen[(f[0], f[1])]} "
                             f"({f[0]}); remove the duplicate")
        if f:
            first_seen[(f[0], f[1])] = line_no
    raise AssertionError("unreachable")  # the fast path's checks failed, so a line above raised


def read_pairs(list_file):
    """The (image, label) pairs of a list file (see parse_list)."""
    return parse_list(read_list_bytes(list_file), list_file)


def read_ids(path):
    """Image ids of an id-per-line file (the first word of every non-blank line)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"id list {path} does not exist")
    return [line.split()[0] for line in _decode(read_list_bytes(path), path).splitlines() if line.strip()]


def write_list(path, lines):
    """Write a list (one entry per line) atomically; returns the path."""
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
