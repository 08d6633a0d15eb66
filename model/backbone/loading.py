"""Strict loading of public pretrained backbone files (their own key names)."""
import torch

from util.state_dict import first_keys, key_problems, strip_module_prefix, torch_load

_WRAPPER_KEYS = ("state_dict", "model")


def read_state_dict(path):
    """Read a weight file with `weights_only=True`, unwrap `state_dict` / `model` and strip
    `module.` prefixes. Returns a dict of tensors."""
    data = torch_load(path, "pretrained weight file (initmodel/README.md lists where to get them)")
    while isinstance(data, dict):
        wrapper = next((k for k in _WRAPPER_KEYS if isinstance(data.get(k), dict)), None)
        if wrapper is None:
            break
        data = data[wrapper]
    if not isinstance(data, dict) or not all(torch.is_tensor(v) for v in data.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (optionally under "
                         f"'state_dict' or 'model'), got {type(data).__name__}")
    return strip_module_prefix(data)


def load_pretrained(backbone, path, name):
    """Load `path` into `backbone` strictly, after mapping the upstream key names.

    Known-unused keys (the classifier: fc.* / classifier.*) are dropped; BatchNorm
    `num_batches_tracked` counters absent from old files are filled with 0. Anything else
    missing, unexpected or of the wrong shape raises one ValueError naming the file and the
    first offending keys.
    """
    source = read_state_dict(path)
    expected = backbone.state_dict()
    mapped, duplicates = {}, []
    for key, value in source.items():
        ours = backbone.upstream_key(key)
        if ours is None:
            continue
        if ours in mapped:
            duplicates.append(key)
        mapped[ours] = value
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in mapped:
            mapped[key] = torch.zeros_like(value)
    problems = key_problems(expected, mapped)
    if duplicates:
        problems.append(f"keys given twice {first_keys(duplicates)}")
    if problems:
        raise ValueError(f"{path}: does not fit backbone '{name}': " + "; ".join(problems))
    backbone.load_state_dict(mapped, strict=True)
    return backbone
