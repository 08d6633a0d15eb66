"""Mixed precision on CUDA: an fp16 step with a GradScaler stays finite and its state resumes
exactly; bf16 autocast; the training engine with amp=fp16 / bf16 end to end."""
import copy
import os

import pytest
import torch
import torch.nn as nn

from engine.trainer import Trainer
from tests.helpers.engine import checkpoint_weights, crash_then_resume, tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 2, 1)).cuda()


def fp16_steps(net, optimizer, scaler, inputs):
    for x, y in inputs:
        with torch.autocast("cuda", dtype=torch.float16):
            loss = nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return loss


def batches(n, seed=1):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return [(torch.randn(4, 3, 16, 16, device="cuda", generator=g),
             torch.randint(0, 2, (4, 16, 16), device="cuda", generator=g)) for _ in range(n)]


def test_fp16_step_with_grad_scaler_is_finite_and_skips_overflows(cudnn_flags):
    net = small_net()
    before = [p.detach().clone() for p in net.parameters()]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0 ** 40)  # the first steps overflow
    loss = fp16_steps(net, optimizer, scaler, batches(1))
    assert torch.isfinite(loss)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # skipped
    assert scaler.get_scale() < 2.0 ** 40
    fp16_steps(net, optimizer, scaler, batches(30))
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_grad_scaler_state_resumes_exactly(cudnn_flags):
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    net = small_net()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", growth_interval=2)
    data = batches(6)
    fp16_steps(net, optimizer, scaler, data[:3])
    saved = (copy.deepcopy(net.state_dict()), copy.deepcopy(optimizer.state_dict()),
             scaler.state_dict())
    fp16_steps(net, optimizer, scaler, data[3:])

    resumed = small_net()
    resumed.load_state_dict(saved[0])
    optimizer2 = torch.optim.SGD(resumed.parameters(), lr=0.01, momentum=0.9)
    optimizer2.load_state_dict(saved[1])
    scaler2 = torch.amp.GradScaler("cuda")
    scaler2.load_state_dict(saved[2])
    assert scaler2.state_dict() == saved[2]
    fp16_steps(resumed, optimizer2, scaler2, data[3:])
    assert scaler2.state_dict() == scaler.state_dict()
    for a, b in zip(net.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_bf16_autocast_step():
    net = small_net()
    x, y = batches(1)[0]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = net(x)
        loss = nn.functional.cross_entropy(out, y)
    assert out.dtype == torch.bfloat16 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
               for p in net.parameters())


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_training_engine_with_amp(tmp_path, synthetic_voc, data_cache_dir, amp, cudnn_flags):
    cfg = tiny_config(tmp_path, synthetic_voc, data_cache_dir, "device=cuda", f"amp={amp}")
    state = Trainer(cfg).fit()  # a non-finite loss would raise
    assert state["iteration"] == 2
    last = torch.load(os.path.join(cfg.exp_path, "snapshot", "last.pth"), weights_only=True)
    assert ("scaler" in last) == (amp == "fp16")
    assert all(torch.isfinite(v).all() for v in checkpoint_weights(cfg).values()
               if v.is_floating_point())


def test_training_engine_fp16_resume(tmp_path, synthetic_voc, data_cache_dir, monkeypatch,
                                     cudnn_flags):
    """A run crashed after epoch 1 and resumed ends where the uninterrupted one does: same
    counters and GradScaler state, weights equal up to the GPU's non-deterministic kernels."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    common = ("device=cuda", "amp=fp16", "epochs=2", "deterministic=true")
    whole = tiny_config(tmp_path, synthetic_voc, data_cache_dir, *common, f"exp_dir={tmp_path}/a")
    Trainer(whole).fit()
    crashed = tiny_config(tmp_path, synthetic_voc, data_cache_dir, *common, f"exp_dir={tmp_path}/b")
    crash_then_resume(crashed, monkeypatch)
    a, b = (torch.load(os.path.join(c.exp_path, "snapshot", "last.pth"), weights_only=True)
            for c in (whole, crashed))
    assert (a["epoch"], a["iteration"]) == (b["epoch"], b["iteration"]) == (2, 4)
    assert a["scaler"] == b["scaler"]
    for k, v in a["model"].items():
        if v.is_floating_point():
            torch.testing.assert_close(b["model"][k], v, rtol=1e-3, atol=1e-4)
