"""Checks of config values: one key's type and choices (check_value), one key's range and
several keys together (validate). Every failure is one ConfigError line naming where the value
came from (a file or the command line) and the key."""
import difflib
import math
import string

POSITIVE = ("shot", "train_size", "val_size", "epochs", "batch_size", "base_lr", "test_num",
            "batch_size_val", "val_every", "print_freq", "reduce_dim")
NON_NEGATIVE = ("train_num", "workers", "index_workers", "warmup_iters", "weight_decay", "momentum",
                "stop_interval", "poly_power", "max_loss", "rotation_seed", "visualize", "eft_rounds",
                "eft_lr", "eft_power", "eft_weight_decay", "eft_aux_weight")
# keys whose value is a fraction: (low, high, whether low itself is allowed)
FRACTIONS = {"eft_momentum": (0.0, 1.0, True), "eft_blend": (0.0, 1.0, True), "eft_keep": (0.0, 1.0, False)}
# The fine-tuning modes that act on no convolution, so take neither ft_kernels nor ft_bn.
# svf.finetune enforces the same rule; it is restated here so that a wrong combination stops
# before any model is built.
NO_CONV_MODES = ("freeze", "full", "bn", "bn_weight", "bn_bias")
# path templates and the placeholders they may use (util/config.py Config.fill)
TEMPLATES = ("best_copy", "base_weight")
PLACEHOLDERS = ("dataset", "split", "backbone", "backbone_folder", "arch", "shot")


class ConfigError(ValueError):
    """A configuration problem, reported in one line that names the file and the key."""


def unknown_key(key, where, known):
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else " (see config/defaults.yaml)"
    return ConfigError(f"{where}: unknown key {key!r}{hint}")


def _type_name(value):
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string",
            list: "a list"}.get(type(value), type(value).__name__)


def _check_type(key, value, default, where, choices):
    """Coerce `value` to the type of `default`, or raise a one-line ConfigError."""
    bad = ConfigError(f"{where}: key {key!r} expects {_type_name(default)}, got {value!r}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif isinstance(default, float):
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{where}: key {key!r} expects a finite number, got {value!r}")
    elif isinstance(default, str):
        if value is None:
            value = ""
        if value is False and "off" in choices.get(key, ()):
            value = "off"  # YAML 1.1 reads a bare `off` as false
        if not isinstance(value, str):
            raise bad
    elif isinstance(default, list):
        if default and not isinstance(value, list) and not isinstance(default[0], list):
            value = [value]  # `ft_layers=layer4` means [layer4]
        if not isinstance(value, list):
            raise bad
        if default:
            value = [_check_type(key, v, default[0], where, {}) for v in value]
    return value


def check_value(key, value, default, where, choices):
    """Type check (see _check_type) plus the key's allowed choices (for a list key: of each
    element, and the list must not be empty). `default` None means an unknown key."""
    value = _check_type(key, value, default, where, choices)
    if key not in choices:
        return value
    allowed = choices[key]
    if isinstance(default, list):
        if not value or any(v not in allowed for v in value):
            raise ConfigError(f"{where}: key {key!r} takes a non-empty list from "
                              f"{', '.join(allowed)}; got {value!r}")
    elif value not in allowed:
        raise ConfigError(f"{where}: key {key!r} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _check_template(key, template, where):
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise ConfigError(f"{where}: key {key!r} = {template!r} is not a valid template ({e})") from None
    wrong = [f for f in fields if f not in PLACEHOLDERS]
    if wrong:
        raise ConfigError(f"{where}: key {key!r} = {template!r} uses unknown placeholder {{{wrong[0]}}}; "
                          f"use {' '.join('{' + p + '}' for p in PLACEHOLDERS)}")


def validate(values, origins):
    """Checks of one key's range or of several keys together; `origins` names where each key's
    value came from."""
    def fail(key, message):
        raise ConfigError(f"{origins[key]}: {message}")

    for key in POSITIVE:
        if values[key] <= 0:
            fail(key, f"key {key!r} must be positive; got {values[key]!r}")
    for key in NON_NEGATIVE:
        if values[key] < 0:
            fail(key, f"key {key!r} must not be negative; got {values[key]!r}")
    for key, (lo, hi, closed) in FRACTIONS.items():
        if not (lo <= values[key] <= hi and (closed or values[key] > lo)):
            fail(key, f"key {key!r} must be in {'[' if closed else '('}{lo:g}, {hi:g}]; got {values[key]!r}")
    if values["eft_min_pixels"] < 1:
        fail("eft_min_pixels", f"key 'eft_min_pixels' must be at least 1; got {values['eft_min_pixels']!r}")
    if values["eft"] and values["arch"] == "pspnet":
        fail("eft", "key 'eft': arch pspnet (the base learner) has no episodes to adapt to; use an episode arch")
    if values["eft"] and values["amp"] == "fp16":
        fail("eft", "key 'eft' adapts without a gradient scaler; use amp=bf16 or amp=off with eft=true")
    if values["split"] not in (0, 1, 2, 3):
        fail("split", f"key 'split' must be 0, 1, 2 or 3; got {values['split']!r}")
    lo_hi = values["train_scale"]
    if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
        fail("train_scale", f"key 'train_scale' must be [low, high] with 0 < low <= high; got {lo_hi!r}")
    if not 0 < values["svf_rank_ratio"] <= 1:
        fail("svf_rank_ratio", f"key 'svf_rank_ratio' must be in (0, 1]; got {values['svf_rank_ratio']!r}")
    _check_finetune_keys(values, fail)
    if not values["test_seeds"]:
        fail("test_seeds", "key 'test_seeds' must list at least one seed")
    if 0 < values["train_num"] < values["batch_size"]:
        fail("train_num", f"key 'train_num' = {values['train_num']} is smaller than one batch "
                          f"(batch_size {values['batch_size']}); use 0 (every image) or at least batch_size")
    if values["device"] == "cpu" and values["amp"] != "off":
        fail("amp", f"amp={values['amp']} needs device cuda (or auto on a CUDA machine); use amp=off on the CPU")
    if values["arch"] == "pspnet" and values["shot"] != 1:
        fail("shot", "arch pspnet (the base learner) uses no support images; shot must be 1")
    for key in TEMPLATES:
        _check_template(key, values[key], origins[key])
    return values


def _check_finetune_keys(values, fail):
    """The combinations of mode, ft_kernels, ft_bn, svf_factors and svf_param that svf.finetune
    refuses (docs/svf.md, Fine-tuning modes)."""
    mode, kernels = values["mode"], values["ft_kernels"]
    if kernels != "all" and mode in NO_CONV_MODES:
        fail("ft_kernels", f"key 'ft_kernels' = {kernels} selects convolutions, but mode {mode} acts on "
                           "none; use ft_kernels=all")
    if values["ft_bn"] and mode == "freeze":
        fail("ft_bn", "key 'ft_bn' with mode freeze is mode bn; use mode=bn")
    if values["ft_bn"] and (mode in NO_CONV_MODES or (mode == "partial" and kernels == "all")):
        fail("ft_bn", f"key 'ft_bn': mode {mode} with ft_kernels={kernels} already trains BatchNorm; "
                      "use ft_bn=false")
    if values["svf_param"] != "direct" and "S" not in values["svf_factors"]:
        fail("svf_param", f"key 'svf_param' = {values['svf_param']} reparametrises S, but svf_factors "
                          f"{values['svf_factors']} does not include S")
