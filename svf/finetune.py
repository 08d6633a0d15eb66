"""svf.finetune: one call that decides what in a backbone trains (the paper's comparisons)."""
import torch.nn as nn

from .decompose import check_ratio, rank_from_ratio
from .layers import SVDConv2d, SVDLinear
from .resolver import merge, replace_modules, unwrap
from .scaled import ChannelScaledLayer

MODES = ("freeze", "full", "partial", "bn", "bn_weight", "bn_bias", "svf", "scale_out",
         "scale_in")
FACTORS = ("U", "S", "V")
PARAMS = ("direct", "exp")
_BN_PARTS = {"bn": ("weight", "bias"), "bn_weight": ("weight",), "bn_bias": ("bias",)}


class FinetuneSummary:
    """What trains after svf.finetune: `per_stage` maps each stage to (trainable, total)
    parameter counts; `trainable` / `total` are the sums; str() is a table for the log."""

    def __init__(self, mode, description, per_stage):
        self.mode, self.description, self.per_stage = mode, description, per_stage
        self.trainable = sum(t for t, _ in per_stage.values())
        self.total = sum(n for _, n in per_stage.values())

    def __str__(self):
        lines = [f"backbone fine-tuning: {self.description}",
                 f"{'stage':<8} {'trainable':>12} {'total':>12}"]
        for stage, (trainable, total) in self.per_stage.items():
            lines.append(f"{stage:<8} {trainable:>12,} {total:>12,}")
        share = 100.0 * self.trainable / max(self.total, 1)
        lines.append(f"{'all':<8} {self.trainable:>12,} {self.total:>12,}  ({share:.3f}% trains)")
        return "\n".join(lines)

    def __repr__(self):
        return f"FinetuneSummary(mode={self.mode!r}, trainable={self.trainable}, total={self.total})"


def stages_of(backbone):
    """The backbone's stage names: its `stages` attribute, else its direct children's names."""
    return tuple(getattr(backbone, "stages", None) or (name for name, _ in backbone.named_children()))


def _check_choice(value, choices, what):
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(choices)}")


def _check_arguments(backbone, mode, layers, factors, param, rank_ratio):
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
    if param == "exp" and "S" not in factors:
        raise ValueError(f"param 'exp' reparametrises S, but factors {tuple(factors)} "
                         "do not include 'S'")
    check_ratio(rank_ratio, "rank_ratio")
    return stages, tuple(layers), tuple(factors)


def finetune(backbone, mode, layers=("layer2", "layer3", "layer4"), factors=("S",),
             param="direct", rank_ratio=1.0):
    """Set what trains in `backbone` (stages layer0..layer4) and return a FinetuneSummary.

    Modes: freeze (nothing trains); full (every backbone parameter); partial (the listed
    stages entirely); bn / bn_weight / bn_bias (BatchNorm affine weight and bias / weight /
    bias of the listed stages); svf (every Conv2d / Linear of the listed stages becomes an SVD
    layer at `rank_ratio` of full rank and only `factors` train, S directly or, with
    param="exp", as S * exp(S') with S' starting at 0; the other stages stay dense and frozen);
    scale_out / scale_in (a trainable per-channel scale after / before every Conv2d / Linear of
    the listed stages). `layers` is not used by freeze and full; `factors`, `param` and
    `rank_ratio` only by svf.

    Layers inserted by an earlier call are merged back first, so calling finetune again
    switches mode. Only requires_grad is set: BatchNorm running statistics are frozen by the
    training engine (BN in eval mode). A DataParallel / DDP wrapper is unwrapped.
    """
    backbone = unwrap(backbone)
    stages, layers, factors = _check_arguments(backbone, mode, layers, factors, param,
                                               rank_ratio)
    merge(backbone)
    backbone.requires_grad_(mode == "full")
    description = f"mode {mode}"
    if mode not in ("freeze", "full"):
        description += f" on {', '.join(layers)}"
    for name in layers if mode not in ("freeze", "full") else ():
        stage = getattr(backbone, name)
        if mode == "partial":
            stage.requires_grad_(True)
        elif mode in _BN_PARTS:
            _train_batchnorm(stage, _BN_PARTS[mode])
        elif mode == "svf":
            setattr(backbone, name, _to_svf(stage, factors, param, rank_ratio))
        else:
            setattr(backbone, name, _to_scaled(stage, mode[len("scale_"):]))
    if mode == "svf":
        description += f", factors {'+'.join(factors)}, param {param}, rank ratio {rank_ratio:g}"
    return summarise(backbone, mode, description, stages)


def _train_batchnorm(stage, parts):
    for module in stage.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            for part in parts:
                getattr(module, part).requires_grad_(True)


def _to_svf(stage, factors, param, rank_ratio):
    def make(_, module):
        if type(module) not in (nn.Conv2d, nn.Linear):
            return None
        layer_type = SVDConv2d if type(module) is nn.Conv2d else SVDLinear
        groups = getattr(module, "groups", 1)
        full_rank = min(module.weight.shape[0] // groups, module.weight[0].numel())
        layer = layer_type.from_dense(module, rank_from_ratio(full_rank, rank_ratio))
        layer.requires_grad_(False)
        for factor in factors:
            getattr(layer, factor).requires_grad_(True)
        if param == "exp":
            layer.use_exp_singular_values()
        return layer
    return replace_modules(stage, make)


def _to_scaled(stage, side):
    def make(_, module):
        if type(module) not in (nn.Conv2d, nn.Linear):
            return None
        return ChannelScaledLayer(module, side)
    return replace_modules(stage, make)


def summarise(backbone, mode="custom", description=None, stages=None):
    """Count trainable / total parameters per stage of `backbone`."""
    backbone = unwrap(backbone)
    stages = stages or stages_of(backbone)
    per_stage = {}
    for name in stages:
        params = list(getattr(backbone, name).parameters())
        per_stage[name] = (sum(p.numel() for p in params if p.requires_grad),
                           sum(p.numel() for p in params))
    return FinetuneSummary(mode, description or f"mode {mode}", per_stage)
