"""The CUDA side of the runtime: cudnn.benchmark, pinned memory with non_blocking copies, a
one-process NCCL group (and the metrics' all_reduce over it), scoring on the GPU."""
import pytest
import torch
import torch.distributed as dist

from engine.loaders import build_dataset, build_loader
from engine.metrics import FewShotEvaluator
from engine.runtime import DistInfo, Runtime, to_device
from tests.engine.test_metrics import ragged_batch
from tests.helpers.engine import tiny_config
from util.data.folds import get_fold

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("deterministic", [False, True])
def test_cudnn_benchmark_follows_deterministic(tmp_path, synthetic_voc, data_cache_dir,
                                               deterministic, cudnn_flags):
    cfg = tiny_config(tmp_path, synthetic_voc, data_cache_dir, "device=cuda",
                      f"deterministic={str(deterministic).lower()}")
    runtime = Runtime(cfg)
    assert runtime.device.type == "cuda"
    assert torch.backends.cudnn.benchmark is (not deterministic)
    assert torch.backends.cudnn.deterministic is deterministic


def test_pinned_memory_loader_and_non_blocking_copy(tmp_path, synthetic_voc, data_cache_dir):
    cfg = tiny_config(tmp_path, synthetic_voc, data_cache_dir, "device=cuda")
    fold = get_fold(cfg.dataset, cfg.split)
    dataset = build_dataset(cfg, fold, "episodes", "val", 11)
    loader = build_loader(dataset, 2, False, 11, DistInfo(), 1, pin_memory=True)
    batch = next(iter(loader))
    assert batch["query_img"].is_pinned() and batch["query_mask_ori"].is_pinned()
    moved = to_device(batch, torch.device("cuda"))
    torch.cuda.synchronize()
    assert moved["query_img"].is_cuda and moved["query_name"] == batch["query_name"]
    assert torch.equal(moved["support_masks"].cpu(), batch["support_masks"])


def test_one_process_nccl_group_and_metric_all_reduce(tmp_path):
    dist.init_process_group("nccl", init_method=f"file://{tmp_path}/store", rank=0,
                            world_size=1, device_id=torch.device("cuda", 0))
    try:
        t = torch.arange(4.0, device="cuda")
        dist.all_reduce(t)
        assert t.tolist() == [0.0, 1.0, 2.0, 3.0]
        ev = FewShotEvaluator([1, 2, 3], ori_resize=True)
        ev.update(torch.randn(16, 2, 9, 9), ragged_batch([(7, 11), (11, 7)] * 8))
        before = ev.state.clone()
        ev.all_reduce()  # NCCL: through the GPU and back
        assert ev.state.device.type == "cpu" and torch.equal(ev.state, before)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("ori_resize", [True, False])
def test_scoring_on_the_gpu_equals_the_cpu(ori_resize):
    sides = [(7, 11), (11, 7), (11, 11), (5, 9)] * 4
    batch = ragged_batch(sides)
    logits = torch.randn(16, 2, 9, 9, generator=torch.Generator().manual_seed(1))
    cpu, gpu = (FewShotEvaluator([1, 2, 3], ori_resize=ori_resize) for _ in range(2))
    cpu.update(logits, batch)
    gpu.update(logits.cuda(), to_device(batch, torch.device("cuda")))
    assert torch.equal(cpu.state, gpu.state)
