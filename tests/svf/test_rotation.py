"""The rotation control W' = R diag(s) R^T W: R orthogonal, fixed, reproducible from the seed
and the layer's name, stored with the model and merged exactly."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import svf
from svf.rotation import layer_seed

from tests.svf.test_finetune import X, make_tiny


def rotations(model):
    return {n: b for n, b in model.named_buffers() if n.endswith(".rotation")}


def test_random_rotation_is_orthogonal_and_reproducible():
    first = svf.random_rotation(64, torch.Generator().manual_seed(3))
    again = svf.random_rotation(64, torch.Generator().manual_seed(3))
    other = svf.random_rotation(64, torch.Generator().manual_seed(4))
    assert first.dtype == torch.float64 and first.shape == (64, 64)
    assert torch.allclose(first @ first.T, torch.eye(64, dtype=torch.float64), atol=1e-12)
    assert torch.equal(first, again) and not torch.allclose(first, other)
    assert not torch.allclose(first, torch.eye(64, dtype=torch.float64), atol=0.5)


def test_layer_seed_is_stable_and_depends_on_seed_and_name():
    assert layer_seed(0, "layer3.0.conv2") == 15593155027481433821  # the same on every run
    assert len({layer_seed(s, n) for s in (0, 1) for n in ("layer2.0.conv1", "layer2.0.conv2")}) == 4


def test_rotation_is_a_fixed_buffer_and_only_the_scale_trains():
    model = make_tiny()
    svf.finetune(model, "rotation")
    layer = model.layer2[0][0]  # grouped conv, groups=2: one R per group of 4 channels
    assert isinstance(layer, svf.RotatedScaleLayer)
    assert layer.rotation.shape == (2, 4, 4) and not layer.rotation.requires_grad
    assert "rotation" not in dict(layer.named_parameters())
    assert "rotation" in layer.state_dict()
    assert torch.equal(layer.scale, torch.ones(8))
    eye = torch.eye(4).expand(2, 4, 4)
    assert torch.allclose(layer.rotation @ layer.rotation.mT, eye, atol=1e-6)
    assert not any(n.endswith("rotation") for n in svf.trainable_state_dict(model))


def test_weight_is_r_diag_s_rt_w():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 6, 3, padding=1, bias=True)
    layer = svf.RotatedScaleLayer(conv, seed=11)
    with torch.no_grad():
        layer.scale.copy_(torch.linspace(0.5, 2.0, 6))
    r = layer.rotation[0].double()
    expected = (r @ torch.diag(layer.scale.double()) @ r.T @ conv.weight.double().reshape(6, -1))
    x = torch.randn(2, 3, 9, 9)
    reference = F.conv2d(x.double(), expected.reshape(6, 3, 3, 3), conv.bias.double(), padding=1)
    assert torch.allclose(layer(x).double(), reference, atol=1e-5)
    dense = layer.to_dense()
    assert type(dense) is nn.Conv2d and dense.weight.requires_grad
    assert torch.allclose(dense(x).double(), reference, atol=1e-5)
    assert torch.equal(dense.bias, conv.bias)


def test_same_seed_same_rotations_whatever_else_is_listed():
    one, two = make_tiny(), make_tiny()
    svf.finetune(one, "rotation", rotation_seed=5)
    svf.finetune(two, "rotation", layers=("layer3",), rotation_seed=5)
    assert torch.equal(rotations(one)["layer3.0.rotation"], rotations(two)["layer3.0.rotation"])
    three = make_tiny()
    svf.finetune(three, "rotation", rotation_seed=6)
    assert not torch.allclose(rotations(one)["layer3.0.rotation"],
                              rotations(three)["layer3.0.rotation"])


def test_stored_rotations_come_back_with_the_state_dict():
    trained = make_tiny()
    svf.finetune(trained, "rotation", rotation_seed=1)
    with torch.no_grad():
        for p in trained.parameters():
            if p.requires_grad:
                p.uniform_(0.5, 1.5)
    fresh = make_tiny()
    svf.finetune(fresh, "rotation", rotation_seed=2)  # other R until the state dict arrives
    fresh.load_state_dict(trained.state_dict())
    for name, buffer in rotations(trained).items():
        assert torch.equal(rotations(fresh)[name], buffer)
    with torch.no_grad():
        expected = trained(X)
        svf.merge(fresh)
        for stage, out in fresh(X).items():
            assert torch.allclose(out, expected[stage], rtol=1e-4, atol=1e-5), stage
    assert not rotations(fresh)
