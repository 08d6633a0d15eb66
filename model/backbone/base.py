"""The staged-backbone contract shared by every backbone (docs/ARCHITECTURE.md)."""
from collections import OrderedDict

import torch.nn as nn

STAGES = ("layer0", "layer1", "layer2", "layer3", "layer4")


class StagedBackbone(nn.Module):
    """A backbone made of five stages `layer0` .. `layer4`, called one after the other.

    Subclasses assign the five stages as attributes and set `channels`, a dict giving each
    stage's output channels. `forward(x)` returns the five stage outputs in a dict.
    """

    stages = STAGES
    channels: dict

    def forward(self, x):
        outputs = OrderedDict()
        for name in self.stages:
            x = getattr(self, name)(x)
            outputs[name] = x
        return outputs

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
