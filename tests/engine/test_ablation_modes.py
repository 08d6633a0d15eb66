"""The paper's ablation modes through train.py and test.py on synthetic data: training moves
exactly what the config names, and test.py rebuilds, loads and merges the checkpoint."""
import pytest

from engine.tester import run_test
from engine.trainer import Trainer
from tests.engine.test_train import changed, initial_weights
from tests.helpers.engine import checkpoint_weights, tiny_config

CASES = {  # config overrides -> the backbone tensors training may move (name suffixes)
    "rotation, 3x3 of layer4": (["mode=rotation", "ft_layers=layer4", "ft_kernels=3x3"],
                                {"conv2.scale"}),
    "S and S' of layer4's 3x3 convs, with BatchNorm": (
        ["mode=svf", "ft_layers=layer4", "ft_kernels=3x3", "svf_param=exp_both", "ft_bn=true"],
        {"conv2.S", "conv2.S_delta", "bn1.weight", "bn1.bias", "bn2.weight", "bn2.bias",
         "bn3.weight", "bn3.bias", "downsample.1.weight", "downsample.1.bias"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_train_and_test_the_ablation_modes(tmp_path, synthetic_voc, data_cache_dir, case):
    overrides, allowed = CASES[case]
    cfg = tiny_config(tmp_path, synthetic_voc, data_cache_dir, *overrides)
    Trainer(cfg).fit()
    after = checkpoint_weights(cfg)  # last.pth: what trains, and the buffers (R among them)
    before = initial_weights(cfg)
    backbone = {k for k in changed({k: before[k] for k in after}, after) if k.startswith("backbone.")}
    assert backbone and all(k.startswith("backbone.layer4.") for k in backbone)
    assert {k.split(".", 3)[3] for k in backbone} <= allowed
    if "mode=rotation" in overrides:
        assert "backbone.layer4.0.conv2.rotation" in after  # R travels with the checkpoint
    dense = checkpoint_weights(cfg, "best.pth")  # merged back: R, S and S' folded into the weights
    assert not any(k.endswith((".rotation", ".scale", ".S", ".S_delta")) for k in dense)
    summary = run_test(cfg.replace(test_seeds=[11]))
    assert 0 <= summary["logits"]["miou"]["mean"] <= 1
