"""SVF on the resnet50 backbone, as svf.bench builds it: what trains, merged exactness, the
authors-style reference, and the benchmark's command line."""
import re

import pytest
import torch
import torch.nn as nn

import svf
from tools import bench_svf as bench
from tools.svf_reference import ReferenceSVDConv2d, authors_rank

from tests.svf.test_resolver import randomise_batchnorm, rel_err

LISTED = ("layer2", "layer3", "layer4")


@pytest.fixture(scope="module")
def variants():
    """dense, full (layer2-4), reference SVF, ours (svf.finetune 'svf'), ours keeping
    activations, ours merged."""
    return bench.build_variants(torch.device("cpu"), seed=0)


def test_ours_trains_only_singular_values_of_layer2_to_4(variants):
    dense, _, _, ours, _, _ = variants
    summary = svf.summarise(ours)
    assert summary.per_stage["layer0"][0] == summary.per_stage["layer1"][0] == 0
    for stage in ("layer0", "layer1"):  # frozen stages stay plain dense layers
        assert all(type(m) is nn.Conv2d for m in getattr(ours, stage).modules()
                   if isinstance(m, (nn.Conv2d, svf.SVDConv2d)))
    trainable = [n for n, p in ours.named_parameters() if p.requires_grad]
    assert all(n.endswith(".S") and n.split(".")[0] in LISTED for n in trainable)
    convs = sum(isinstance(m, svf.SVDConv2d) for m in ours.modules())
    assert len(trainable) == convs == (4 + 6 + 3) * 3 + 3
    x = torch.randn(1, 3, 33, 33)
    sum(f.sum() for f in ours(x).values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in ours.parameters() if p.requires_grad)
    ours.zero_grad(set_to_none=True)


def test_merged_model_is_the_dense_model(variants):
    dense, _, _, ours, _, merged = variants
    assert sum(p.numel() for p in merged.parameters()) == sum(
        p.numel() for p in dense.parameters())
    assert [type(m) for m in merged.modules()] == [type(m) for m in dense.modules()]
    randomise_batchnorm(dense)
    randomise_batchnorm(merged)
    x = torch.randn(1, 3, 41, 41)
    with torch.no_grad():
        expected = dense(x)
        for stage, out in merged(x).items():
            assert rel_err(out, expected[stage]) < 1e-5


def test_reference_is_the_authors_computation(variants):
    _, _, reference, _, _, _ = variants
    assert authors_rank(27) == 24 and authors_rank(64) == 64 and authors_rank(3) == 1
    assert reference.layer0.conv1.vector_S.shape == (1, 24, 1, 1)  # the inexact stem
    trainable = {n for n, p in reference.named_parameters() if p.requires_grad}
    assert all(n.endswith("vector_S") and n.split(".")[0] in LISTED for n in trainable)
    assert len(trainable) == (4 + 6 + 3) * 3 + 3
    for stage in ("layer0", "layer1"):  # every conv factorised, frozen stages too
        assert all(type(parent) is ReferenceSVDConv2d
                   for parent in getattr(reference, stage).modules()
                   if any(type(c) is nn.Conv2d for c in parent.children())
                   and not isinstance(parent, nn.Sequential))


def test_training_s_keeps_less_than_full_fine_tuning(variants):
    """The saved activations of a training step: ours below full fine-tuning of layer2-4 and
    far below the authors' layers; keep=activation trades memory for fewer operations."""
    _, full, reference, ours, ours_activation, _ = variants
    x = torch.randn(2, 3, 65, 65)
    memory = {name: bench.training_memory(b, x) for name, b in
              (("full", full), ("reference", reference), ("ours", ours),
               ("activation", ours_activation))}
    assert memory["ours"] < memory["full"] < memory["activation"] < memory["reference"]


def test_bench_prints_table_and_final_line(variants, monkeypatch, capsys):
    monkeypatch.setattr(bench, "build_variants", lambda device, seed: variants)
    bench.main(["--size", "33", "--repeats", "1", "--warmup", "0", "--threads", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"train_vs_reference=\d+\.\d{3} train_vs_full=\d+\.\d{3} "
                        r"memory_vs_reference=0\.\d{3} memory_vs_full=0\.\d{3} "
                        r"merged_infer_vs_dense=\d+\.\d{3}", lines[-1])
    rows = [line[:20].strip() for line in lines]
    for row in (bench.FROZEN, bench.FULL, bench.REFERENCE, bench.OURS, bench.OURS_ACTIVATION,
                bench.DENSE, bench.MERGED):
        assert row in rows
