"""Singular value fine-tuning (SVF, NeurIPS 2022), exact and fast; see docs/svf.md.

    import svf
    summary = svf.finetune(backbone, "svf")        # only the singular values of layer2-4 train
    print(summary)                                  # trainable / total parameters per stage
    svf.save_trainable(backbone, "s_values.pt")     # the few MB that trained
    svf.merge(backbone)                             # plain dense layers for deployment
"""
from .checkpoint import load_trainable, save_trainable, trainable_state_dict
from .decompose import decompose, rank_from_ratio
from .finetune import CONV_MODES, FACTORS, MODES, PARAMS, finetune
from .layers import SVDConv2d, SVDLinear
from .resolver import KERNELS, merge, resolver, unwrap
from .rotation import RotatedScaleLayer, random_rotation
from .scaled import ChannelScaledLayer
from .summary import FinetuneSummary, summarise

__all__ = ["resolver", "merge", "finetune", "summarise", "FinetuneSummary", "SVDConv2d",
           "SVDLinear", "ChannelScaledLayer", "RotatedScaleLayer", "random_rotation",
           "trainable_state_dict", "save_trainable", "load_trainable", "decompose",
           "rank_from_ratio", "unwrap", "MODES", "FACTORS", "PARAMS", "KERNELS", "CONV_MODES"]
