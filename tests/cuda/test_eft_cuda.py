"""Test-time adaptation on CUDA at the published size (BAM, 473 px, 1 and 2 shots): the rounds
run, the backbone runs once per image, the trained weights come back, and the answer is the
CPU's up to float rounding."""
import copy

import pytest
import torch

from tests.helpers.eft import adapt, predict_foreground, small_model
from tools.bench_eft import PassCounter, synthetic_episode
from util.data.folds import get_fold

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

SIZE = 473


def on(device, batch):
    return {k: v.to(device) for k, v in batch.items()}


@pytest.mark.parametrize("shot", [1, 2])
def test_bam_adapts_at_473_on_cuda_as_on_the_cpu(shot, no_tf32):
    batch = synthetic_episode(get_fold("pascal", 0), shot, SIZE, seed=shot)
    cpu = predict_foreground(small_model("bam", shot), batch)
    gpu = copy.deepcopy(cpu).cuda()
    counter = PassCounter(gpu.backbone)
    got, counts, adaptation = adapt(gpu, on("cuda", batch), "eft_rounds=2", "device=cuda")
    counter.remove()
    assert counts["chosen"][0] == 0  # a round was chosen: the rounds ran
    assert counter.passes == 1 + shot
    assert all(torch.equal(p, adaptation.trained[n]) for n, p in adaptation.params.items())
    expected, cpu_counts, _ = adapt(cpu, batch, "eft_rounds=2")
    assert counts["chosen"] == cpu_counts["chosen"]
    torch.testing.assert_close(got["logits"].cpu(), expected["logits"], rtol=1e-3, atol=1e-3)
    same = (got["logits_eft"].argmax(1).cpu() == expected["logits_eft"].argmax(1)).float().mean()
    assert torch.isfinite(got["logits_eft"]).all() and same >= 0.99
