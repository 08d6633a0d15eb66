"""The staged-backbone contract shared by every backbone (docs/ARCHITECTURE.md)."""
from collections import OrderedDict

import torch.nn as nn

STAGES = ("layer0", "layer1", "layer2", "layer3", "layer4")


class StagedBackbone(nn.Module):
    """A backbone made of five stages `layer0` .. `layer4`, called one after the other.

    Subclasses assign the five stages as attributes and set `channels`, a dict giving each
    stage's output channels. `forward(x)` returns the five stage outputs in a dict.

    Taps (per-block features, docs/models.md): `stage_with_taps(name, x)` runs one stage and
    also returns its taps, in order, from the same pass. A tap is what a stage child gives
    through its own `forward_with_tap(x) -> (output, tap)` (ResNet's Bottleneck: its pre-ReLU
    residual sum), or the output of a child named in `tap_children[stage]` (VGG: every conv,
    before its BatchNorm). Both survive svf.finetune, which replaces the layers inside a block
    and keeps every child's name. `hyper_levels` names the three levels, fine to coarse, that
    multi-level correlation (MSANet, after HSNet) reads: each a (stage, "taps" | "output") pair.
    """

    stages = STAGES
    channels: dict
    tap_children = {}
    hyper_levels = (("layer2", "taps"), ("layer3", "taps"), ("layer4", "taps"))

    def forward(self, x):
        outputs = OrderedDict()
        for name in self.stages:
            x = getattr(self, name)(x)
            outputs[name] = x
        return outputs

    def _gives_tap(self, stage, child_name, child):
        return hasattr(child, "forward_with_tap") or child_name in self.tap_children.get(stage, ())

    def stage_with_taps(self, name, x):
        """(output, taps) of stage `name` on x: the output equals getattr(self, name)(x)."""
        taps = []
        for child_name, child in getattr(self, name).named_children():
            if hasattr(child, "forward_with_tap"):
                x, tap = child.forward_with_tap(x)
            else:
                x = tap = child(x)
            if self._gives_tap(name, child_name, child):
                taps.append(tap)
        return x, taps

    def tap_count(self, name):
        """How many taps stage `name` gives."""
        return sum(self._gives_tap(name, n, c) for n, c in getattr(self, name).named_children())

    @staticmethod
    def upstream_key(key):
        """Map a key of the public weight file to our key; None marks a known-unused key."""
        raise NotImplementedError


def init_weights(module):
    """He-normal (fan_out) convolutions, unit BatchNorm, zero biases: the usual ImageNet init."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
