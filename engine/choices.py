"""The values every choice key of the config accepts, each list read from the registry that owns
it at the time of the call, and load_config with them. Adding a backbone, an architecture or a
fine-tuning mode to its registry makes it a valid value here; nothing else lists them."""
import svf
from engine import eft, metrics, optim, runtime
from model import backbone, registry
from util import config
from util.data import folds


def current_choices():
    """{config key: the names its registry holds now}."""
    return {
        "dataset": tuple(folds.DATASETS),
        "arch": tuple(registry.ARCHS),
        "backbone": tuple(backbone.BACKBONES),
        "mode": svf.MODES,
        "ft_layers": backbone.STAGES,
        "ft_kernels": svf.KERNELS,
        "svf_factors": svf.FACTORS,
        "svf_param": svf.PARAMS,
        "schedule": tuple(optim.SCHEDULES),
        "amp": tuple(runtime.AMP_DTYPES),
        "device": runtime.DEVICES,
        "miou_missing": metrics.MISSING_CLASS_RULES,
        "eft_params": eft.EFT_PARAMS,
        "eft_select": eft.EFT_SELECT,
        "eft_s2q_output": eft.EFT_S2Q_OUTPUTS,
    }


def load_config(path, overrides=()):
    """util.config.load_config with the registries' choices."""
    return config.load_config(path, overrides, choices=current_choices())
