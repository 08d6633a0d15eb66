"""svf.finetune: each mode trains exactly the parameters it names, starts from the dense
function, merges back, and rejects bad arguments with one clear line."""
import pytest
import torch
import torch.nn as nn

import svf
from model.backbone import StagedBackbone


def block(cin, cout, **conv):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, **conv), nn.BatchNorm2d(cout),
                         nn.ReLU())


class TinyBackbone(StagedBackbone):
    """Five small stages, with a grouped conv and a Linear, to run every mode in milliseconds."""

    def __init__(self):
        super().__init__()
        self.layer0 = block(3, 4)
        self.layer1 = block(4, 8, stride=2)
        self.layer2 = nn.Sequential(block(8, 8, groups=2), nn.Conv2d(8, 8, 1, bias=False))
        self.layer3 = block(8, 12, dilation=2, padding_mode="zeros")
        self.layer3[0].padding = (2, 2)
        self.layer4 = nn.Sequential(block(12, 6), nn.Flatten(2), nn.Linear(64, 10))
        self.channels = {"layer0": 4, "layer1": 8, "layer2": 8, "layer3": 12, "layer4": 6}


def make_tiny(seed=0):
    torch.manual_seed(seed)
    model = TinyBackbone().eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model


def run(model, x):
    return sum(v.sum() for v in model(x).values())


def grads_reached(model, x):
    model.zero_grad(set_to_none=True)
    run(model, x).backward()
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@torch.no_grad()
def trained_then_merged(model):
    """Move every trainable value as training would, then svf.merge: (outputs before, after)."""
    for p in model.parameters():
        if p.requires_grad:
            p.mul_(1 + 0.3 * torch.rand_like(p))
    trained = model(X)
    svf.merge(model)
    return trained, model(X)


def in_stages(name, stages):
    return name.split(".")[0] in stages


X = torch.randn(2, 3, 16, 16)
LISTED = ("layer2", "layer3", "layer4")
BN_PARAMS = {f"{module_name}.{part}" for module_name, m in make_tiny().named_modules()
             if isinstance(m, nn.BatchNorm2d) for part in ("weight", "bias")}
EXPECTED = {  # mode -> predicate on parameter names after finetune (listed stages = LISTED)
    "full": lambda n: True,
    "partial": lambda n: in_stages(n, LISTED),
    "bn": lambda n: in_stages(n, LISTED) and n in BN_PARAMS,
    "bn_weight": lambda n: in_stages(n, LISTED) and n in BN_PARAMS and n.endswith(".weight"),
    "bn_bias": lambda n: in_stages(n, LISTED) and n in BN_PARAMS and n.endswith(".bias"),
    "svf": lambda n: in_stages(n, LISTED) and n.endswith(".S"),
    "scale_out": lambda n: in_stages(n, LISTED) and n.endswith(".scale"),
    "scale_in": lambda n: in_stages(n, LISTED) and n.endswith(".scale"),
    "rotation": lambda n: in_stages(n, LISTED) and n.endswith(".scale"),
}


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_gradients_reach_exactly_what_the_mode_names(mode):
    model = make_tiny()
    with torch.no_grad():
        dense_out = model(X)
    summary = svf.finetune(model, mode)
    names = {n for n, _ in model.named_parameters()}
    expected = {n for n in names if EXPECTED[mode](n)}
    assert expected, mode
    assert {n for n, p in model.named_parameters() if p.requires_grad} == expected
    assert grads_reached(model, X) == expected
    assert summary.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert summary.total == sum(p.numel() for p in model.parameters())
    with torch.no_grad():  # fine-tuning starts from the pretrained function
        for stage, out in model(X).items():
            assert torch.allclose(out, dense_out[stage], rtol=1e-5, atol=1e-5), stage


def test_freeze_trains_nothing():
    model = make_tiny()
    summary = svf.finetune(model, "freeze")
    assert summary.trainable == 0 and not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("factors, param, suffixes", [
    (("U", "S", "V"), "direct", (".U", ".S", ".V")),
    (("U",), "direct", (".U",)),
    (("S", "V"), "exp", (".S_delta", ".V")),
    (("S",), "exp", (".S_delta",)),
])
def test_svf_factors_and_exp_parametrisation(factors, param, suffixes):
    model = make_tiny()
    svf.finetune(model, "svf", layers=("layer4",), factors=factors, param=param)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters()
                         if n.startswith("layer4.") and n.endswith(suffixes)}
    assert grads_reached(model, X) == trainable


def test_svf_leaves_other_stages_dense_and_frozen():
    model = make_tiny()
    svf.finetune(model, "svf", layers=("layer3",))
    assert type(model.layer0[0]) is nn.Conv2d and type(model.layer4[2]) is nn.Linear
    assert isinstance(model.layer3[0], svf.SVDConv2d)


def test_trained_values_merge_into_an_equivalent_dense_model():
    for mode in ("svf", "scale_out", "scale_in", "rotation"):
        model = make_tiny()
        svf.finetune(model, mode, factors=("U", "S", "V") if mode == "svf" else ("S",))
        trained, merged = trained_then_merged(model)
        assert all(type(m) in (nn.Conv2d, nn.Linear) for m in model.modules()
                   if isinstance(m, (nn.Conv2d, nn.Linear, svf.SVDConv2d, svf.SVDLinear,
                                     svf.ChannelScaledLayer)))
        assert not any(isinstance(m, (svf.SVDConv2d, svf.SVDLinear, svf.ChannelScaledLayer))
                       for m in model.modules())
        for stage in trained:
            assert torch.allclose(merged[stage], trained[stage], rtol=1e-4, atol=1e-5), mode


def test_finetune_again_switches_mode():
    model = make_tiny()
    svf.finetune(model, "svf")
    summary = svf.finetune(model, "partial", layers=("layer1",))
    assert not any(isinstance(m, svf.SVDConv2d) for m in model.modules())
    assert summary.per_stage["layer1"][0] == summary.per_stage["layer1"][1] > 0
    assert summary.trainable == summary.per_stage["layer1"][0]


def test_summary_table_reads_well():
    summary = svf.finetune(make_tiny(), "svf", layers=("layer4",))
    text = str(summary)
    lines = text.splitlines()
    assert lines[0] == ("backbone fine-tuning: mode svf on layer4, factors S, param direct, "
                        "rank ratio 1")
    assert lines[1].split() == ["stage", "trainable", "total"]
    assert [line.split()[0] for line in lines[2:]] == ["layer0", "layer1", "layer2", "layer3",
                                                       "layer4", "all"]
    assert lines[2].split()[1] == "0" and "% trains" in lines[-1]
    assert f"{summary.trainable:,}" in lines[-1]


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "lora"}, "unknown fine-tuning mode 'lora'; expected one of freeze, full, "
                       "partial, bn, bn_weight, bn_bias, svf, scale_out, scale_in, rotation$"),
    ({"mode": "svf", "layers": ("layer5",)},
     "unknown layer 'layer5'; expected some of layer0, layer1, layer2, layer3, layer4"),
    ({"mode": "svf", "factors": ("S", "W")}, "unknown factor 'W'; expected one of U, S, V"),
    ({"mode": "svf", "factors": ()}, "factors must name at least one of U, S, V"),
    ({"mode": "svf", "param": "log"}, "unknown param 'log'; expected one of direct, exp"),
    ({"mode": "svf", "factors": ("U",), "param": "exp"}, "param 'exp' reparametrises S"),
    ({"mode": "svf", "rank_ratio": 0}, r"rank_ratio must be a number in \(0, 1\], got 0"),
    ({"mode": "svf", "param": "exp_both", "factors": ("V",)}, "param 'exp_both' reparametrises S"),
    ({"mode": "svf", "kernels": "5x5"}, "unknown kernels '5x5'; expected one of all, 3x3, 1x1"),
    ({"mode": "bn", "kernels": "3x3"}, "kernels '3x3' selects convolutions, but mode 'bn' acts "
                                       "on none"),
    ({"mode": "full", "kernels": "1x1"}, "mode 'full' acts on none"),
    ({"mode": "freeze", "train_bn": True}, "train_bn with mode 'freeze' is mode 'bn'"),
    ({"mode": "full", "train_bn": True}, "mode 'full' already trains BatchNorm"),
    ({"mode": "bn_bias", "train_bn": True}, "mode 'bn_bias' already trains BatchNorm"),
    ({"mode": "partial", "train_bn": True}, "mode 'partial' with kernels 'all' already trains "
                                            "BatchNorm; train_bn adds nothing"),
    ({"mode": "svf", "train_bn": 1}, "train_bn must be true or false, got 1"),
    ({"mode": "rotation", "rotation_seed": -1}, "rotation_seed must be an integer >= 0, got -1"),
    ({"mode": "svf", "layers": ("layer3",), "kernels": "1x1"},
     "mode 'svf' with kernels '1x1' finds no Conv2d / Linear layer in layer3"),
])
def test_bad_arguments_give_one_clear_line(kwargs, message):
    model = make_tiny()
    with pytest.raises(ValueError, match=message) as info:
        svf.finetune(model, **kwargs)
    assert "\n" not in str(info.value)
    assert not any(isinstance(m, svf.SVDConv2d) for m in model.modules())  # nothing changed
