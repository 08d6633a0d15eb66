"""VGG16-bn split into five stages the way PFENet splits it.

Stage children keep their index in torchvision's `features` so the public keys map one to one:
layer0 = features[0:7], layer1 = [7:14], layer2 = [14:24], layer3 = [24:34], layer4 = [34:43]
(the last max-pool is dropped). There is no dilation: layer2 has stride 8, layer3 and layer4
stride 16, so layer2 is at a finer resolution than layer3 (the meta-learners resize it).
A stage's taps are its convs' outputs (before BatchNorm); the multi-level correlation reads
layer3's and layer4's taps and layer4's output (HSNet's and MSANet's VGG levels: conv4_x,
conv5_x and the last feature).
"""
from collections import OrderedDict

import torch.nn as nn

from .base import StagedBackbone, init_weights

# torchvision's configuration "D"; "M" is a 2x2 max-pool (ceil_mode, as in PFENet).
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_STAGE_BOUNDS = (0, 7, 14, 24, 34, 43)


def _vgg16_bn_features():
    layers, cin = [], 3
    for item in _VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
        else:
            layers += [nn.Conv2d(cin, item, 3, padding=1), nn.BatchNorm2d(item),
                       nn.ReLU(inplace=True)]
            cin = item
    return layers


class VGG16BN(StagedBackbone):
    """VGG16 with BatchNorm; channels 64 / 128 / 256 / 512 / 512."""

    hyper_levels = (("layer3", "taps"), ("layer4", "taps"), ("layer4", "output"))

    def __init__(self):
        super().__init__()
        features = _vgg16_bn_features()
        self.channels, self.tap_children = {}, {}
        for index, (start, stop) in enumerate(zip(_STAGE_BOUNDS, _STAGE_BOUNDS[1:])):
            stage = nn.Sequential(OrderedDict(
                (str(i), features[i]) for i in range(start, stop)))
            setattr(self, f"layer{index}", stage)
            convs = [(n, m) for n, m in stage.named_children() if isinstance(m, nn.Conv2d)]
            self.channels[f"layer{index}"] = convs[-1][1].out_channels
            self.tap_children[f"layer{index}"] = tuple(n for n, _ in convs)
        init_weights(self)

    @staticmethod
    def upstream_key(key):
        """features.N.* -> layerS.N.*; classifier.* unused; our own layerS.* keys unchanged."""
        if key.startswith("classifier."):
            return None
        if key.startswith("features."):
            index = int(key.split(".")[1])
            for stage, stop in enumerate(_STAGE_BOUNDS[1:]):
                if index < stop:
                    return f"layer{stage}." + key[len("features."):]
            return key  # beyond the last stage: reported as unexpected
        return key
