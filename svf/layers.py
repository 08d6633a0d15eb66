"""SVDConv2d and SVDLinear: a dense layer stored as per-group factors U diag(S) V^T.

Both compute exactly what the dense layer computes (at full rank, up to float rounding). The
forward picks one of three computations ("auto"):

* no factor needs a gradient (frozen layer, evaluation): one dense op with a weight rebuilt
  once and cached until a factor changes (in-place updates bump the tensors' versions);
* U or V trains: rebuild the dense weight each forward (autograd projects dW on the factors);
* only S trains: two convolutions (svf.two_conv) or rebuild (svf.rebuild); svf.cost picks the
  one that keeps less for the backward, then the one expected to be cheaper for this input
  size. Neither keeps a weight-sized tensor; both keep the input when another op keeps it
  anyway (a ReLU keeps its output).

`compute` may be set to "two_conv" or "rebuild" to force one path (benchmarks, tests).
`keep` (convs) is "least" (the default: keep the least memory for the backward, then the
faster path) or "activation" (two_conv keeps the rank-r activation, never the input, and the
faster path is used: fewer operations, more memory).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cost import keeps_input, kept_by_producer, prefer_two_conv
from .decompose import decompose
from .rebuild import RebuiltSingularValues, dense_blocks
from .two_conv import TwoConvSingularValues

COMPUTE_PATHS = ("auto", "two_conv", "rebuild")
KEEP_CHOICES = ("least", "activation")


class _SVDLayer(nn.Module):
    """Shared parts: factors, the exp parametrisation of S, path choice, dense rebuild."""

    dense_type = None  # the dense layer class a subclass decomposes

    @classmethod
    def from_dense(cls, layer, rank=None):
        """Decompose `layer` exactly; rank per group, None = full rank."""
        if not isinstance(layer, cls.dense_type):
            raise ValueError(f"{cls.__name__}.from_dense expects an nn.{cls.dense_type.__name__}, "
                             f"got {type(layer).__name__}")
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        self._setup_from(layer, rank)
        return self

    def _fill_dense(self, layer):
        """Write U diag(S) V^T (computed in float64) and the bias into the dense `layer`."""
        blocks = dense_blocks(self.U.double(), self.singular_values().double(), self.V.double())
        layer.weight.copy_(blocks.reshape(layer.weight.shape))
        layer.weight.requires_grad_(self._dense_trainable())
        if self.bias is not None:
            layer.bias.copy_(self.bias)
            layer.bias.requires_grad_(self.bias.requires_grad)
        return layer

    def _copy_bias(self, layer):
        self.bias = None if layer.bias is None else nn.Parameter(
            layer.bias.detach().clone(), requires_grad=layer.bias.requires_grad)

    def _set_factors(self, weight, groups, rank):
        u, s, v = decompose(weight, groups, rank)
        trainable = weight.requires_grad
        self.U = nn.Parameter(u, requires_grad=trainable)
        self.S = nn.Parameter(s, requires_grad=trainable)
        self.V = nn.Parameter(v, requires_grad=trainable)
        self.register_parameter("S_delta", None)
        self.compute = "auto"
        self._cache_key, self._cache = None, None

    @property
    def rank(self):
        """Rank kept in every group."""
        return self.S.shape[1]

    @property
    def full_rank(self):
        return min(self.U.shape[1], self.V.shape[2])

    def use_exp_singular_values(self):
        """Train S' in S * exp(S') instead of S itself (S' starts at 0; S is frozen)."""
        if self.S_delta is None:
            self.S_delta = nn.Parameter(torch.zeros_like(self.S))
        self.S.requires_grad_(False)

    def singular_values(self):
        """The effective singular values, [groups, rank]."""
        return self.S if self.S_delta is None else self.S * torch.exp(self.S_delta)

    def _factors(self):
        return [p for p in (self.U, self.S, self.V, self.S_delta) if p is not None]

    def _weight_blocks(self):
        """U diag(S) V^T per group: [groups, out/groups, cols]."""
        return dense_blocks(self.U, self.singular_values(), self.V)

    def _cached_weight(self):
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in self._factors())
        if key != self._cache_key:
            with torch.no_grad():
                self._cache = self._dense_weight()
            self._cache_key = key
        return self._cache

    def _choose_path(self, positions, input_needs_grad, keep_input, memory_first=True):
        """"cached", "rebuild" or "two_conv" for an input of `positions` output positions
        (batch included); keep_input: whether two_conv would keep its input (svf.cost)."""
        if self.compute != "auto":
            return self.compute
        factors = self._factors()
        if not torch.is_grad_enabled() or not any(p.requires_grad for p in factors):
            return "cached"
        if self.U.requires_grad or self.V.requires_grad:
            return "rebuild"
        groups, rows, rank = self.U.shape
        if prefer_two_conv(positions, groups, rows, rank, self.V.shape[2], input_needs_grad,
                           keep_input, memory_first):
            return "two_conv"
        return "rebuild"

    def _dense_trainable(self):
        return any(p.requires_grad for p in self._factors())

    def __setattr__(self, name, value):
        if name == "compute" and value not in COMPUTE_PATHS:
            raise ValueError(f"compute must be one of {', '.join(COMPUTE_PATHS)}, got {value!r}")
        if name == "keep" and value not in KEEP_CHOICES:
            raise ValueError(f"keep must be one of {', '.join(KEEP_CHOICES)}, got {value!r}")
        super().__setattr__(name, value)

    def __getstate__(self):  # the cache is derived data: never pickle or deep-copy it
        state = super().__getstate__().copy()
        state["_cache_key"], state["_cache"] = None, None
        return state


class SVDConv2d(_SVDLayer):
    """nn.Conv2d stored as U diag(S) V^T per group (any kernel, stride, padding, padding_mode,
    dilation, groups, bias). A fresh layer is a default-initialised nn.Conv2d, decomposed."""

    dense_type = nn.Conv2d

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", rank=None, device=None, dtype=None):
        super().__init__()
        dense = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation,
                          groups, bias, padding_mode, device=device, dtype=dtype)
        self._setup_from(dense, rank)

    def _setup_from(self, layer, rank):
        for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding",
                     "dilation", "groups", "padding_mode", "_reversed_padding_repeated_twice"):
            setattr(self, name, getattr(layer, name))
        self._set_factors(layer.weight, layer.groups, rank)
        self._copy_bias(layer)
        self.keep = "least"

    def _conv(self, x, weight, bias, groups):
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, groups)
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)

    def _dense_weight(self):
        shape = (self.out_channels, self.in_channels // self.groups) + tuple(self.kernel_size)
        return self._weight_blocks().reshape(shape)

    def plan(self, x):
        """(computation, whether two_conv keeps its input) for input x: see svf.cost."""
        positions = x.numel() // (x.shape[-3] * self.stride[0] * self.stride[1])
        if self.keep == "activation":
            return self._choose_path(positions, x.requires_grad, False, memory_first=False), False
        padded = self.padding_mode != "zeros" or isinstance(self.padding, str)
        keep = keeps_input(not padded and kept_by_producer(x), x.numel(),
                           positions * self.S.numel())
        return self._choose_path(positions, x.requires_grad, keep), keep

    def forward(self, x):
        path, keep_input = self.plan(x)
        if path == "cached":
            return self._conv(x, self._cached_weight(), self.bias, self.groups)
        groups, rows, rank = self.U.shape
        if self.U.requires_grad or self.V.requires_grad:  # plain autograd projects dW
            if path == "rebuild":
                return self._conv(x, self._dense_weight(), self.bias, self.groups)
            down = self.V.reshape((groups * rank, self.in_channels // groups) + self.kernel_size)
            hidden = self._conv(x, down, None, groups) * self.singular_values().view(-1, 1, 1)
            return F.conv2d(hidden, self.U.reshape(groups * rows, rank, 1, 1), self.bias, 1, 0,
                            1, groups)
        return self._train_singular_values(x, path, keep_input)

    def _train_singular_values(self, x, path, keep_input):
        """Only S (or S') trains: svf.two_conv or svf.rebuild, which keep only x or `a`."""
        padding = self.padding
        if self.padding_mode != "zeros" or isinstance(padding, str):
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            x, padding = F.pad(x, self._reversed_padding_repeated_twice, mode=mode), 0
        unbatched = x.dim() == 3
        x = x.unsqueeze(0) if unbatched else x
        groups, rows, rank = self.U.shape
        s = self.singular_values()
        if path == "rebuild":
            shape = (self.out_channels, self.in_channels // groups) + tuple(self.kernel_size)
            y = RebuiltSingularValues.apply(x, self.U, s, self.V, self.bias, shape, self.stride,
                                            padding, self.dilation, groups)
        else:
            down = self.V.reshape((groups * rank, self.in_channels // groups) + self.kernel_size)
            up = self.U.reshape(groups * rows, rank, 1, 1)
            y = TwoConvSingularValues.apply(x, down, s.reshape(groups * rank), up, self.bias,
                                            self.stride, padding, self.dilation, groups,
                                            keep_input)
        return y.squeeze(0) if unbatched else y

    @torch.no_grad()
    def to_dense(self):
        """The equivalent nn.Conv2d (weight rebuilt in float64), same device and dtype."""
        layer = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                          self.padding, self.dilation, self.groups, self.bias is not None,
                          self.padding_mode, device=self.U.device, dtype=self.U.dtype)
        return self._fill_dense(layer)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.bias is not None}")
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text + f", rank={self.rank}/{self.full_rank}, compute={self.compute}"


class SVDLinear(_SVDLayer):
    """nn.Linear stored as U diag(S) V^T (with or without bias). A fresh layer is a
    default-initialised nn.Linear, decomposed (never left uninitialised)."""

    dense_type = nn.Linear

    def __init__(self, in_features, out_features, bias=True, rank=None, device=None, dtype=None):
        super().__init__()
        self._setup_from(nn.Linear(in_features, out_features, bias, device=device, dtype=dtype),
                         rank)

    def _setup_from(self, layer, rank):
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self._set_factors(layer.weight, 1, rank)
        self._copy_bias(layer)

    def _dense_weight(self):
        return self._weight_blocks()[0]

    def forward(self, x):
        # Only S training: the two matmuls keep the rank-r hidden activation (never larger
        # than x), the autograd rebuild keeps x and the weight, so the two matmuls are used.
        path = self._choose_path(math.prod(x.shape[:-1]), x.requires_grad, keep_input=False)
        if path == "cached":
            return F.linear(x, self._cached_weight(), self.bias)
        if path == "rebuild":
            return F.linear(x, self._dense_weight(), self.bias)
        hidden = F.linear(x, self.V[0]) * self.singular_values()[0]
        return F.linear(hidden, self.U[0], self.bias)

    @torch.no_grad()
    def to_dense(self):
        """The equivalent nn.Linear (weight rebuilt in float64), same device and dtype."""
        layer = nn.Linear(self.in_features, self.out_features, self.bias is not None,
                          device=self.U.device, dtype=self.U.dtype)
        return self._fill_dense(layer)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, rank={self.rank}/{self.full_rank}, "
                f"compute={self.compute}")
