"""State dicts from files: the `module.` prefix of (Distributed)DataParallel, and strict loading
whose error names the file and the first offending keys."""


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


def load_strict(module, state, source, what):
    """Load `state` into `module` strictly, or raise one ValueError:
    '<source>: does not fit <what>: <problems>'."""
    state = strip_module_prefix(state)
    problems = key_problems(module.state_dict(), state)
    if problems:
        raise ValueError(f"{source}: does not fit {what}: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)
    return module
