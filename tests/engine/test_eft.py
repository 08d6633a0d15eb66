"""Test-time adaptation (engine/eft.py): round 0 is the plain test, the query's labels never
matter, every episode starts from the trained weights, the guard, the backbone runs once."""
import pytest
import torch

from engine.eft import EpisodeAdaptation, adapted_parameters
from engine.eft_steps import confident_mask
from tests.helpers.eft import ARCHS, adapt, eft_config, predict_foreground, small_model
from tests.helpers.model import make_batch
from tools.bench_eft import PassCounter

SIZE = 33


def episode(seed, shot=1):
    batch = make_batch(1, shot, size=SIZE, seed=seed)
    batch["ori_size"] = torch.tensor([[40, 30]])  # a val image: the canvas right of x=30 is padding
    return batch


@pytest.fixture(scope="module", params=ARCHS)
def arch_model(request):
    model = small_model(request.param)
    return request.param, predict_foreground(model, episode(0))


def test_rounds_zero_is_the_plain_test(arch_model):
    _, model = arch_model
    batch = episode(1)
    with torch.no_grad():
        plain = model(batch)
    outputs, counts, _ = adapt(model, batch, "eft_rounds=0")
    assert torch.equal(outputs["logits_eft"], plain["logits"])
    for key in (k for k in plain if k.startswith("logits")):
        assert torch.equal(outputs[key], plain[key])
    assert counts["chosen"] == [1]


def test_rounds_run_and_the_answer_is_one_of_them(arch_model):
    arch, model = arch_model
    if arch in ("pfenet", "bam"):
        pytest.skip("covered end to end by test_eft_command; kept short on the CPU")
    outputs, counts, adaptation = adapt(model, episode(1), "eft_rounds=2")
    assert sum(counts["chosen"]) == 1 and counts["chosen"][0] == 0  # a round was chosen, not the fallback
    assert torch.isfinite(outputs["logits_eft"]).all()
    trained = adaptation.trained
    assert all(torch.equal(p, trained[n]) for n, p in adaptation.params.items())  # weights restored
    assert not any(n.startswith(("backbone.", "base_learner.")) for n in adaptation.params)
    if arch == "msanet":
        assert any(n.startswith("attention.") for n in adaptation.params)


def garbage(batch, seed):
    g = torch.Generator().manual_seed(seed)
    out = dict(batch)
    for key in ("query_mask", "query_base_mask"):
        out[key] = torch.randint(0, 2, batch[key].shape, generator=g).masked_fill(
            torch.rand(batch[key].shape, generator=g) < 0.3, 255)
    return out


def test_query_labels_never_change_the_answer():
    """With the oracle on: it alone reads the label; the s2q answer must not move (MSANet: every
    kind of support cue)."""
    model = predict_foreground(small_model("msanet"), episode(0))
    batch = episode(2)
    honest, counts, _ = adapt(model, batch, "eft_rounds=2", "eft_select=oracle")
    again, counts_again, _ = adapt(model, garbage(batch, 5), "eft_rounds=2", "eft_select=oracle")
    for key in (k for k in honest if k != "logits_eft_oracle"):
        assert torch.equal(honest[key], again[key]), key
    assert counts["chosen"] == counts_again["chosen"] and counts["chosen"][0] == 0
    assert "logits_eft_oracle" in honest and sum(counts["oracle_chosen"]) == 1


def test_every_episode_starts_from_the_trained_weights():
    model = predict_foreground(small_model("baseline"), episode(0))
    cfg = eft_config("eft_rounds=2")
    a, b = episode(3), episode(4)
    from engine.runtime import Runtime
    runtime = Runtime(cfg)
    with torch.no_grad():
        first = EpisodeAdaptation(model, cfg)
        ab = [first(model, e, runtime)["logits_eft"] for e in (a, b)]
        second = EpisodeAdaptation(model, cfg)
        ba = [second(model, e, runtime)["logits_eft"] for e in (b, a)]
    assert torch.equal(ab[0], ba[1]) and torch.equal(ab[1], ba[0])


def test_no_confident_pixel_keeps_the_plain_prediction():
    model = predict_foreground(small_model("msanet"), episode(0), fraction=0)
    batch = episode(1)
    with torch.no_grad():
        plain = model(batch)
    assert (plain["logits"].argmax(1) == 0).all()
    outputs, counts, _ = adapt(model, batch, "eft_rounds=3")
    assert torch.equal(outputs["logits_eft"], plain["logits"])
    assert counts["chosen"] == [1, 0, 0, 0]


def test_confident_mask_keeps_the_top_fraction_inside_the_canvas():
    logits = torch.zeros(1, 2, 4, 4)
    logits[0, 1] = torch.arange(16.0).view(4, 4) - 5.5  # 10 pixels above 0.5
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    valid[:, :, 3] = False
    mask = confident_mask(logits, valid, keep=0.2, min_pixels=2)
    passing = 7  # positives 6..15 minus the 3 in column 3
    assert mask.sum() == round(0.2 * passing) and mask[valid.logical_not()].sum() == 0
    assert mask[0, 3, 2] == 1  # the most confident valid pixel
    assert confident_mask(logits, valid, keep=0.2, min_pixels=8) is None


@pytest.mark.parametrize("arch, shot, shared", [("msanet", 1, False), ("bam", 2, True)])
def test_the_backbone_runs_once_per_image(arch, shot, shared):
    model = small_model(arch, shot)
    if shared:
        model.backbone_frozen()  # mode freeze: BAM's base learner shares the backbone
    batch = episode(1, shot)
    predict_foreground(model, batch)
    counter = PassCounter(model.backbone)
    _, counts, _ = adapt(model, batch, "eft_rounds=2")
    counter.remove()
    assert counts["chosen"][0] == 0  # the rounds ran
    assert counter.passes == 1 + shot


def test_published_params_leave_msanets_new_modules_out():
    model = small_model("msanet")
    head, published = adapted_parameters(model, "head"), adapted_parameters(model, "published")
    assert set(head) - set(published) == {n for n in head if n.startswith(("attention.", "similarity_fuse."))}
    assert len(head) > len(published) and "head.cls.3.weight" in published
    assert not any(n.startswith(("backbone.", "base_learner.")) for n in head)


@pytest.mark.parametrize("output, base_passes", [("meta", 1), ("final", 3)])
def test_s2q_runs_the_base_learner_on_the_supports_only_to_score_the_final_output(output, base_passes):
    """eft_s2q_output=final scores the ensemble, which needs the base learner on each support;
    meta scores the meta branch and leaves it at the query (BAM under SVF: its own backbone)."""
    model = small_model("bam", shot=2)
    batch = episode(1, 2)
    predict_foreground(model, batch)
    counter = PassCounter(model.base_learner.backbone)
    _, counts, _ = adapt(model, batch, "eft_rounds=2", f"eft_s2q_output={output}")
    counter.remove()
    assert counts["chosen"][0] == 0  # the rounds ran
    assert counter.passes == base_passes
