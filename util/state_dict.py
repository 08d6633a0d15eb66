"""State dicts from files: reading weight files safely, the `module.` prefix of
(Distributed)DataParallel, and strict loading whose error names the file and the first
offending keys."""
import os
import pickle
import re

import torch


def torch_load(path, what):
    """torch.load(path, weights_only=True) on the CPU: no code in the file runs. A missing,
    empty, truncated or foreign file is one line naming it and `what` it should be."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        reason = "it holds Python objects, which are never loaded, or is no torch file"
    except EOFError:
        reason = "empty or truncated"
    except Exception as e:  # a broken zip archive, a foreign format
        reason = re.sub(r"\x1b\[[0-9;]*m", "", " ".join(str(e).split()))[:120] or type(e).__name__
    raise ValueError(f"{path}: not a readable {what} ({reason})")


def strip_module_prefix(state):
    """The state dict without the `module.` prefix that DataParallel / DDP put on every key."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def first_keys(keys, count=3):
    """The first `count` of `keys` (sorted), for an error message."""
    keys = sorted(keys)
    return ", ".join(keys[:count]) + (f" (+{len(keys) - count} more)" if len(keys) > count else "")


def key_problems(expected, given):
    """What keeps `given` (a state dict) from loading strictly where `expected` is wanted: a list
    of phrases (empty when it fits)."""
    missing = expected.keys() - given.keys()
    unexpected = given.keys() - expected.keys()
    shapes = [f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}"
              for k in expected.keys() & given.keys() if given[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys {first_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {first_keys(unexpected)}")
    if shapes:
        problems.append(f"wrong shapes (file vs model) {first_keys(shapes)}")
    return problems


def load_strict(module, state, source, what, loaded_prefixes=()):
    """Load `state` into `module` strictly, or raise one ValueError:
    '<source>: does not fit <what>: <problems>'. Keys under `loaded_prefixes` (parts loaded
    from files of their own) may be absent from `state`."""
    state = strip_module_prefix(state)
    expected = {k: v for k, v in module.state_dict().items()
                if k in state or not k.startswith(tuple(loaded_prefixes))}
    problems = key_problems(expected, state)
    if problems:
        raise ValueError(f"{source}: does not fit {what}: " + "; ".join(problems))
    module.load_state_dict(state, strict=not loaded_prefixes)
    return module
