"""svf.finetune: one call that decides what in a backbone trains (the paper's comparisons)."""
import torch.nn as nn

from .decompose import check_ratio
from .resolver import KERNELS, kernel_selects, merge, replace_modules, to_svd_layer, unwrap
from .rotation import RotatedScaleLayer, layer_seed
from .scaled import ChannelScaledLayer
from .summary import stages_of, summarise

MODES = ("freeze", "full", "partial", "bn", "bn_weight", "bn_bias", "svf", "scale_out",
         "scale_in", "rotation")
FACTORS = ("U", "S", "V")
PARAMS = ("direct", "exp", "exp_both")
# The modes that act on the Conv2d / Linear layers of the listed stages: only these take a
# kernel filter, and only these can train BatchNorm beside what they train.
CONV_MODES = ("partial", "svf", "scale_out", "scale_in", "rotation")
_BN_PARTS = {"bn": ("weight", "bias"), "bn_weight": ("weight",), "bn_bias": ("bias",)}


def _check_choice(value, choices, what):
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(choices)}")


def _check_combination(mode, kernels, train_bn, rotation_seed):
    if kernels != "all" and mode not in CONV_MODES:
        raise ValueError(f"kernels {kernels!r} selects convolutions, but mode {mode!r} acts on "
                         f"none; use kernels 'all' or one of the modes {', '.join(CONV_MODES)}")
    if not isinstance(train_bn, bool):
        raise ValueError(f"train_bn must be true or false, got {train_bn!r}")
    if train_bn and mode == "freeze":
        raise ValueError("train_bn with mode 'freeze' is mode 'bn': use that")
    if train_bn and (mode not in CONV_MODES or (mode == "partial" and kernels == "all")):
        detail = " with kernels 'all'" if mode == "partial" else ""
        raise ValueError(f"mode {mode!r}{detail} already trains BatchNorm; train_bn adds nothing")
    if isinstance(rotation_seed, bool) or not isinstance(rotation_seed, int) or rotation_seed < 0:
        raise ValueError(f"rotation_seed must be an integer >= 0, got {rotation_seed!r}")


def _check_arguments(backbone, mode, layers, factors, param, rank_ratio, kernels):
    _check_choice(mode, MODES, "fine-tuning mode")
    stages = stages_of(backbone)
    if isinstance(layers, str):
        layers = (layers,)
    for name in layers:
        if name not in stages or not isinstance(getattr(backbone, name, None), nn.Module):
            raise ValueError(f"unknown layer {name!r}; expected some of {', '.join(stages)}")
    if isinstance(factors, str):
        factors = tuple(factors)
    if not factors:
        raise ValueError(f"factors must name at least one of {', '.join(FACTORS)}")
    for factor in factors:
        _check_choice(factor, FACTORS, "factor")
    _check_choice(param, PARAMS, "param")
    if param != "direct" and "S" not in factors:
        raise ValueError(f"param {param!r} reparametrises S, but factors {tuple(factors)} "
                         "do not include 'S'")
    check_ratio(rank_ratio, "rank_ratio")
    _check_choice(kernels, KERNELS, "kernels")
    return stages, tuple(layers), tuple(factors)


def finetune(backbone, mode, layers=("layer2", "layer3", "layer4"), factors=("S",),
             param="direct", rank_ratio=1.0, kernels="all", train_bn=False, rotation_seed=0):
    """Set what trains in `backbone` (stages layer0..layer4) and return a FinetuneSummary.

    Modes: freeze (nothing trains); full (every backbone parameter); partial (the listed
    stages entirely; with kernels '3x3' / '1x1' only the weights and biases of those
    convolutions); bn / bn_weight / bn_bias (BatchNorm affine weight and bias / weight / bias
    of the listed stages); svf (every selected Conv2d / Linear of the listed stages becomes an
    SVD layer at `rank_ratio` of full rank and only `factors` train; param "exp" trains S' in
    S * exp(S') with S' starting at 0 and S frozen, "exp_both" trains S and S' together; the
    other layers stay dense and frozen); scale_out / scale_in (a trainable per-channel scale
    after / before every selected layer); rotation (W becomes R diag(s) R^T W with R a fixed
    random orthogonal matrix drawn from `rotation_seed` and the layer's name, s trainable from
    1).

    `kernels` ('all', '3x3': kernels larger than 1x1, '1x1': 1x1 convs, downsample convs
    included, and Linear layers) filters the layers of partial, svf, scale_* and rotation;
    `train_bn` also trains the BatchNorm weight and bias of the listed stages under those
    modes. `layers` is not used by freeze and full; `factors`, `param` and `rank_ratio` only
    by svf; `rotation_seed` only by rotation.

    Layers inserted by an earlier call are merged back first, so calling finetune again
    switches mode. Only requires_grad is set: BatchNorm running statistics are frozen by the
    training engine (BN in eval mode). A DataParallel / DDP wrapper is unwrapped.
    """
    backbone = unwrap(backbone)
    stages, layers, factors = _check_arguments(backbone, mode, layers, factors, param,
                                               rank_ratio, kernels)
    _check_combination(mode, kernels, train_bn, rotation_seed)
    merge(backbone)
    acts_on = () if mode in ("freeze", "full") else layers
    if mode in CONV_MODES and not any(kernel_selects(m, kernels) for name in acts_on
                                      for m in getattr(backbone, name).modules()):
        raise ValueError(f"mode {mode!r} with kernels {kernels!r} finds no Conv2d / Linear "
                         f"layer in {', '.join(layers)}")
    backbone.requires_grad_(mode == "full")
    for name in acts_on:
        stage = getattr(backbone, name)
        if mode == "partial" and kernels == "all":
            stage.requires_grad_(True)
        elif mode in _BN_PARTS:
            _train_batchnorm(stage, _BN_PARTS[mode])
        else:
            make = _layer_maker(mode, factors, param, rank_ratio, rotation_seed)
            stage = _replace_selected(stage, name, kernels, make)
            setattr(backbone, name, stage)
        if train_bn:
            _train_batchnorm(stage, ("weight", "bias"))
    description = _describe(mode, layers, factors, param, rank_ratio, kernels, train_bn,
                            rotation_seed)
    return summarise(backbone, mode, description, stages)


def _describe(mode, layers, factors, param, rank_ratio, kernels, train_bn, rotation_seed):
    text = f"mode {mode}"
    if mode not in ("freeze", "full"):
        text += f" on {', '.join(layers)}"
    if kernels != "all":
        text += f", kernels {kernels} only"
    if mode == "svf":
        text += f", factors {'+'.join(factors)}, param {param}, rank ratio {rank_ratio:g}"
    if mode == "rotation":
        text += f", rotation seed {rotation_seed}"
    if train_bn:
        text += ", with BatchNorm weight and bias"
    return text


def _train_batchnorm(stage, parts):
    for module in stage.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            for part in parts:
                getattr(module, part).requires_grad_(True)


def _layer_maker(mode, factors, param, rank_ratio, rotation_seed):
    """make(full_name, dense_layer) -> the layer that takes its place (or itself)."""
    if mode == "partial":
        return lambda _, module: module.requires_grad_(True)
    if mode == "svf":
        return lambda _, module: _svd_layer(module, factors, param, rank_ratio)
    if mode == "rotation":
        return lambda name, module: RotatedScaleLayer(module, layer_seed(rotation_seed, name))
    side = mode[len("scale_"):]
    return lambda _, module: ChannelScaledLayer(module, side)


def _replace_selected(stage, stage_name, kernels, make):
    """Offer every dense layer of `stage` that `kernels` selects to make(full name, layer)."""
    def visit(name, module):
        if not kernel_selects(module, kernels):
            return None
        return make(f"{stage_name}.{name}" if name else stage_name, module)
    return replace_modules(stage, visit)


def _svd_layer(module, factors, param, rank_ratio):
    layer = to_svd_layer(module, rank_ratio)
    layer.requires_grad_(False)
    for factor in factors:
        getattr(layer, factor).requires_grad_(True)
    if param != "direct":
        layer.use_exp_singular_values()
        layer.S.requires_grad_(param == "exp_both")
    return layer
