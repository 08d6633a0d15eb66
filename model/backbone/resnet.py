"""Dilated ResNets with output stride 8: the PSPNet "v2" deep-stem ResNet and the torchvision
layout. layer3 uses dilation 2 and layer4 dilation 4 in every block, stride 1 (PFENet's rule)."""
from collections import OrderedDict

import torch.nn as nn
import torch.nn.functional as F

from .base import StagedBackbone, init_weights


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride and dilation), 1x1 expand x4, residual add, ReLU.
    Its tap (StagedBackbone.stage_with_taps) is the residual sum before the final ReLU."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def residual_sum(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out)) + identity

    def forward(self, x):
        return self.relu(self.residual_sum(x))

    def forward_with_tap(self, x):
        """(output, tap): the tap is kept apart from the output's in-place ReLU."""
        tap = self.residual_sum(x)
        return F.relu(tap), tap


def _conv_bn_relu(index, cin, cout, kernel, stride, padding):
    return [(f"conv{index}", nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)),
            (f"bn{index}", nn.BatchNorm2d(cout)),
            (f"relu{index}", nn.ReLU(inplace=True))]


def _stem(deep_stem):
    """layer0: the deep stem (three 3x3 convs, PSPNet v2) or a 7x7 conv, then a max-pool.

    Children keep the upstream names (conv1, bn1, ...) so the public keys map one to one.
    """
    if deep_stem:
        parts = (_conv_bn_relu(1, 3, 64, 3, 2, 1) + _conv_bn_relu(2, 64, 64, 3, 1, 1)
                 + _conv_bn_relu(3, 64, 128, 3, 1, 1))
    else:
        parts = [("conv1", nn.Conv2d(3, 64, 7, 2, 3, bias=False)),
                 ("bn1", nn.BatchNorm2d(64)), ("relu", nn.ReLU(inplace=True))]
    parts.append(("maxpool", nn.MaxPool2d(3, stride=2, padding=1)))
    return nn.Sequential(OrderedDict(parts))


class DilatedResNet(StagedBackbone):
    """ResNet backbone, stages layer0 (stem + max-pool) .. layer4, output stride 8."""

    def __init__(self, blocks_per_stage, deep_stem=True):
        super().__init__()
        self.layer0 = _stem(deep_stem)
        inplanes = 128 if deep_stem else 64
        # (planes, stride, dilation) per stage; layer3/4 trade their stride for dilation.
        plan = ((64, 1, 1), (128, 2, 1), (256, 1, 2), (512, 1, 4))
        self.channels = {"layer0": inplanes}
        for index, (count, (planes, stride, dilation)) in enumerate(zip(blocks_per_stage, plan)):
            stage, inplanes = self._make_stage(inplanes, planes, count, stride, dilation)
            setattr(self, f"layer{index + 1}", stage)
            self.channels[f"layer{index + 1}"] = inplanes
        init_weights(self)

    @staticmethod
    def _make_stage(inplanes, planes, count, stride, dilation):
        outplanes = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or inplanes != outplanes:
            downsample = nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride, bias=False),
                                       nn.BatchNorm2d(outplanes))
        blocks = [Bottleneck(inplanes, planes, stride, dilation, downsample)]
        blocks += [Bottleneck(outplanes, planes, 1, dilation) for _ in range(1, count)]
        return nn.Sequential(*blocks), outplanes

    @staticmethod
    def upstream_key(key):
        """conv1.weight -> layer0.conv1.weight; layerN.* unchanged; fc.* (classifier) unused."""
        if key.startswith("fc."):
            return None
        if key.startswith("layer"):
            return key
        return "layer0." + key
