"""Small random meta-learners of every arch and eft configs, for the test-time adaptation tests."""
import torch

from engine.choices import load_config
from engine.eft import EpisodeAdaptation
from engine.runtime import Runtime
from model.backbone import build_backbone
from model.bam import BAM
from model.baseline import Baseline
from model.msanet import MSANet
from model.pfenet import PFENet
from model.pspnet import PSPNet
from tests.helpers.model import PASCAL_FOLD0_BASE
from util.fileio import REPO_ROOT

ARCHS = ("baseline", "pfenet", "bam", "msanet")


def small_model(arch, shot=1, seed=0):
    """A random `arch` on ResNet-50 with reduce_dim 32, in eval mode (BAM / MSANet: a random
    base learner with its own backbone, as after an SVF run)."""
    torch.manual_seed(seed)
    if arch == "baseline":
        model = Baseline(build_backbone("resnet50"), shot=shot, reduce_dim=32)
    elif arch == "pfenet":
        model = PFENet(build_backbone("resnet50"), reduce_dim=32, scales=(1.0, 0.5))
    else:
        base = PSPNet(build_backbone("resnet50"), num_classes=len(PASCAL_FOLD0_BASE) + 1)
        model = (BAM if arch == "bam" else MSANet)(base, PASCAL_FOLD0_BASE, shot=shot, reduce_dim=32)
    return model.eval()


def final_bias(model):
    owner = model.head if hasattr(model, "head") else model
    return owner.cls[-1].bias


def predict_foreground(model, batch, fraction=0.5):
    """Shift the final classifier's foreground bias so that about `fraction` of the query is
    predicted foreground (every round then runs); fraction 0: nothing is."""
    with torch.no_grad():
        out = model(batch)
        logits = out.get("logits_meta", out["logits"])
        diff = (logits[:, 1] - logits[:, 0]).flatten()
        final_bias(model)[1] -= 1e4 if fraction == 0 else diff.quantile(1 - fraction)
    return model


def eft_config(*overrides):
    return load_config(f"{REPO_ROOT}/config/pascal_split0.yaml", ["eft=true", "device=cpu", *overrides])


def adapt(model, batch, *overrides):
    """(outputs of one EpisodeAdaptation call, its round counts, the adaptation)."""
    cfg = eft_config(*overrides)
    adaptation = EpisodeAdaptation(model, cfg)
    with torch.no_grad():
        outputs = adaptation(model, batch, Runtime(cfg))
    return outputs, adaptation.counts.take(), adaptation
