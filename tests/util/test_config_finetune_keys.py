"""The fine-tuning keys of the config (ft_kernels, ft_bn, svf_param exp_both, rotation_seed):
defaults, accepted combinations, one-line errors, and that build_model passes them on."""
import os

import pytest

import svf
from engine.choices import load_config
from model import registry
from util.config import ConfigError
from util.data.folds import get_fold
from util.fileio import REPO_ROOT

PASCAL = os.path.join(REPO_ROOT, "config", "pascal_split0.yaml")


def test_defaults_change_nothing():
    cfg = load_config(PASCAL)
    assert (cfg.ft_kernels, cfg.ft_bn, cfg.svf_param, cfg.rotation_seed) == ("all", False,
                                                                             "direct", 0)


@pytest.mark.parametrize("overrides", [
    ["mode=partial", "ft_kernels=3x3"], ["mode=partial", "ft_kernels=1x1", "ft_bn=true"],
    ["mode=svf", "ft_kernels=1x1"], ["mode=svf", "ft_bn=true"], ["svf_param=exp_both"],
    ["mode=rotation", "rotation_seed=3"], ["mode=scale_in", "ft_kernels=3x3", "ft_bn=true"],
])
def test_accepted_combinations(overrides):
    cfg = load_config(PASCAL, overrides)
    for text in overrides:
        key, value = text.split("=")
        assert str(getattr(cfg, key)).lower() == value


@pytest.mark.parametrize("overrides, message", [
    (["ft_kernels=5x5"], "key 'ft_kernels' must be one of all, 3x3, 1x1; got '5x5'"),
    (["mode=bn", "ft_kernels=1x1"], "key 'ft_kernels' = 1x1 selects convolutions, but mode bn "
                                    "acts on none"),
    (["mode=freeze", "ft_kernels=3x3"], "mode freeze acts on none"),
    (["mode=freeze", "ft_bn=true"], "key 'ft_bn' with mode freeze is mode bn"),
    (["mode=full", "ft_bn=true"], "mode full with ft_kernels=all already trains BatchNorm"),
    (["mode=partial", "ft_bn=true"], "mode partial with ft_kernels=all already trains BatchNorm"),
    (["svf_param=exp_both", "svf_factors=[U]"], "key 'svf_param' = exp_both reparametrises S"),
    (["svf_param=log"], "key 'svf_param' must be one of direct, exp, exp_both"),
    (["mode=spin"], "rotation; got 'spin'"),
    (["rotation_seed=-1"], "key 'rotation_seed' must not be negative"),
])
def test_wrong_combinations_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(PASCAL, overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_build_model_passes_every_fine_tuning_key(monkeypatch):
    seen, finetune = {}, svf.finetune

    def record(backbone, mode, **kwargs):
        seen.update(kwargs, mode=mode)
        return finetune(backbone, "freeze")

    monkeypatch.setattr(registry.svf, "finetune", record)
    cfg = load_config(PASCAL, ["pretrained=", "mode=rotation", "ft_kernels=1x1", "ft_bn=true",
                               "rotation_seed=9", "ft_layers=[layer3,layer4]",
                               "svf_param=exp_both", "svf_rank_ratio=0.5"])
    registry.build_model(cfg, get_fold("pascal", 0))
    assert seen == dict(mode="rotation", layers=("layer3", "layer4"), factors=("S",),
                        param="exp_both", rank_ratio=0.5, kernels="1x1", train_bn=True,
                        rotation_seed=9)
