"""What identifies a run: the keys that change what it trains (its experiment directory's tag
is made of those that differ from config/defaults.yaml), and the keys that define the model a
checkpoint holds and the fold it belongs to (checkpoints carry them; test.py and resume compare
them with the config)."""
import hashlib
import json
import re

# Keys that never change what a run trains nor which checkpoint it keeps as its best.
RUNTIME_KEYS = ("data_root", "workers", "index_workers", "index_cache_dir", "device", "print_freq",
                "resume", "best_copy", "exp_dir", "exp_name", "weight", "test_seeds",
                "batch_size_val", "visualize", "eft", "eft_rounds", "eft_lr", "eft_power", "eft_momentum",
                "eft_weight_decay", "eft_blend", "eft_keep", "eft_min_pixels", "eft_aux_weight",
                "eft_params", "eft_select", "eft_s2q_output")
# Keys the experiment path names already: exp_dir/<exp_name|dataset>/<arch>/split<k>/<backbone>/<mode>/<shot>shot
PATH_KEYS = ("dataset", "arch", "split", "backbone", "mode", "shot")
# The fold a checkpoint was trained on.
FOLD_KEYS = ("dataset", "split", "use_split_coco")
# The sections of config/defaults.yaml whose keys define the model a checkpoint holds;
# file paths there (pretrained, base_weight) say where weights came from, not what the model is.
MODEL_SECTIONS = ("MODEL", "ARCH")
WEIGHT_PATH_KEYS = ("pretrained", "base_weight")
_READABLE = re.compile(r"^[A-Za-z0-9._+=,-]+$")


def model_keys(sections):
    """The keys that define a model, from {key: section of defaults.yaml}."""
    return tuple(k for k, s in sections.items() if s in MODEL_SECTIONS and k not in WEIGHT_PATH_KEYS)


def identity(values):
    """{key: value} of every key that changes what the run trains."""
    return {k: v for k, v in values.items() if k not in RUNTIME_KEYS}


def _text(value):
    if isinstance(value, list):
        return "+".join(_text(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_tag(values, defaults):
    """The last folder of a run's experiment path: `default` when every key that changes the
    training has its config/defaults.yaml value (the path names the dataset, arch, split,
    backbone, mode and shot); else the differing keys as `key=value,...` when that is short and
    plain, else `run-` and a hash of them. Runtime keys (workers, device, ...) never count."""
    differing = {k: v for k, v in sorted(identity(values).items())
                 if k not in PATH_KEYS and v != defaults.get(k)}
    if not differing:
        return "default"
    readable = ",".join(f"{k}={_text(v)}" for k, v in differing.items())
    if len(readable) <= 64 and _READABLE.match(readable):
        return readable
    digest = hashlib.sha1(json.dumps(differing, sort_keys=True).encode()).hexdigest()
    return f"run-{digest[:10]}"
