"""svf.resolver (the seed paper's entry point, made exact and general) and svf.merge."""
import torch.nn as nn

from .decompose import check_ratio, rank_from_ratio
from .layers import SVDConv2d, SVDLinear
from .scaled import ChannelScaledLayer

_WRAPPERS = (nn.DataParallel, nn.parallel.DistributedDataParallel)
# Kernel filters: every dense layer; those with a kernel larger than 1x1; the 1x1 convs and the
# Linear layers (the downsample convs of a ResNet are 1x1 convs too).
KERNELS = ("all", "3x3", "1x1")


def is_dense_layer(module):
    """Exactly nn.Conv2d or nn.Linear (subclasses such as MultiheadAttention's out_proj, which
    read their weight directly, are not)."""
    return type(module) in (nn.Conv2d, nn.Linear)


def is_pointwise(module):
    """A 1x1 conv or a Linear layer (the authors count Linear as 1x1)."""
    return type(module) is nn.Linear or all(k == 1 for k in module.kernel_size)


def kernel_selects(module, kernels):
    """Whether the kernel filter `kernels` (one of KERNELS) keeps this dense layer."""
    if not is_dense_layer(module):
        return False
    return kernels == "all" or is_pointwise(module) == (kernels == "1x1")


def to_svd_layer(module, ratio):
    """The SVD layer of a dense nn.Conv2d / nn.Linear, at `ratio` of its full rank per group."""
    groups = getattr(module, "groups", 1)
    full_rank = min(module.weight.shape[0] // groups, module.weight[0].numel())
    layer_type = SVDLinear if type(module) is nn.Linear else SVDConv2d
    return layer_type.from_dense(module, rank_from_ratio(full_rank, ratio))


def unwrap(model):
    """The module inside a DataParallel / DistributedDataParallel wrapper (or model itself)."""
    while isinstance(model, _WRAPPERS):
        model = model.module
    return model


def replace_modules(root, make, prefix=""):
    """Apply make(name, m) to the submodules of `root`, depth first: a returned module takes
    m's place (returning m itself keeps it without visiting inside), None descends into m.
    `root` itself is offered too (name ""); the possibly new root is returned."""
    if not prefix:
        new_root = make("", root)
        if new_root is not None:
            return new_root
    for child_name, child in list(root.named_children()):
        name = f"{prefix}{child_name}"
        new = make(name, child)
        if new is None:
            replace_modules(child, make, name + ".")
        elif new is not child:
            setattr(root, child_name, new)
    return root


def _strip_module_prefix(name):
    return name[len("module."):] if name.startswith("module.") else name


def _match(name, patterns):
    """The longest pattern equal to `name` or naming one of its parents, else None."""
    hits = [p for p in patterns if name == p or name.startswith(p + ".")]
    return max(hits, key=len) if hits else None


def _check_names(model, names, option):
    known = {n for n, _ in model.named_modules() if n}
    for name in names:
        if name not in known:
            raise ValueError(f"{option}: no module named {name!r} in the model "
                             f"(names as in model.named_modules(), e.g. 'layer2.0.conv1')")


def resolver(model, global_low_rank_ratio=1.0, excluded_layers=(),
             customized_layers_low_rank_ratio=None, skip_1x1=False, skip_3x3=False):
    """Replace every eligible nn.Conv2d / nn.Linear of `model` by SVDConv2d / SVDLinear.

    Eligible: modules whose type is exactly nn.Conv2d or nn.Linear (subclasses such as
    MultiheadAttention's out_proj are left alone), any kernel, stride, padding, dilation,
    groups (each group decomposed on its own; depthwise convs included) and bias.
    Rank per group = round(ratio x full rank), at least 1, where the ratio is
    `global_low_rank_ratio` or the entry of `customized_layers_low_rank_ratio` naming the layer
    or one of its parents (longest name wins). `excluded_layers` names layers or parents to
    leave dense. skip_1x1 leaves 1x1 convs and Linear layers dense; skip_3x3 leaves every conv
    with a kernel larger than 1x1 dense. Decomposition runs in float64 on the layer's device;
    factors keep the layer's dtype. The model is changed in place and stays on its device.

    A DataParallel / DistributedDataParallel wrapper is accepted: its module is resolved and
    returned unwrapped (wrap it again afterwards; DDP must be built after resolving).
    """
    check_ratio(global_low_rank_ratio)
    custom = {_strip_module_prefix(k): check_ratio(v, f"customized_layers_low_rank_ratio[{k!r}]")
              for k, v in (customized_layers_low_rank_ratio or {}).items()}
    if isinstance(excluded_layers, str):
        excluded_layers = (excluded_layers,)
    excluded = [_strip_module_prefix(n) for n in excluded_layers]
    model = unwrap(model)
    _check_names(model, excluded, "excluded_layers")
    _check_names(model, custom, "customized_layers_low_rank_ratio")

    def make(name, module):
        if _match(name, excluded) is not None or not is_dense_layer(module):
            return None
        pointwise = is_pointwise(module)
        if (skip_1x1 and pointwise) or (skip_3x3 and not pointwise):
            return module  # handled: kept dense, nothing inside to visit
        pattern = _match(name, custom)
        return to_svd_layer(module, custom[pattern] if pattern is not None else global_low_rank_ratio)

    return replace_modules(model, make)


def merge(model):
    """Replace every SVD layer and channel-scaled layer by the equivalent dense layer (weights
    rebuilt in float64), for deployment: the merged model costs what the dense one costs.
    Changes the model in place and returns it (a wrapper is unwrapped, as in resolver)."""
    model = unwrap(model)
    merged_types = (SVDConv2d, SVDLinear, ChannelScaledLayer)
    return replace_modules(model,
                           lambda _, m: m.to_dense() if isinstance(m, merged_types) else None)
