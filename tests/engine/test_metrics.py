"""The evaluator against hand-computed intersection / union sums."""
import math

import pytest
import torch

from engine.metrics import FewShotEvaluator, SemanticEvaluator, intersection_union


def t(rows):
    return torch.tensor(rows, dtype=torch.int64)


def test_intersection_union_ignores_255():
    pred = t([[1, 1, 0], [0, 1, 0]])
    target = t([[1, 0, 0], [255, 1, 1]])
    inter, union = intersection_union(pred, target, 2)
    # the valid pixels (target != 255): pred [1, 1, 0, 1, 0], target [1, 0, 0, 1, 1]
    # background: I 1, U 3 (pred 2 + target 2 - 1); foreground: I 2, U 4 (3 + 3 - 2)
    assert inter.tolist() == [1.0, 2.0]
    assert union.tolist() == [3.0, 4.0]


def test_per_class_sums_not_per_episode_means():
    ev = FewShotEvaluator([1, 2, 3], ori_resize=False)
    ev.add(t([[1, 0, 0, 0]]), t([[1, 1, 1, 1]]), 1)          # I_fg 1, U_fg 4; I_bg 0, U_bg 3
    ev.add(t([[1, 1, 0, 0, 0, 0]]), t([[1, 1, 0, 0, 0, 0]]), 1)  # I_fg 2, U_fg 2; I_bg 4, U_bg 4
    ev.add(t([[0, 0]]), t([[1, 255]]), 2)                     # I_fg 0, U_fg 1; I_bg 0, U_bg 1
    r = ev.result()
    assert r["class_iou"][1] == pytest.approx(3 / 6)  # summed: (1 + 2) / (4 + 2), not mean(1/4, 1) = 0.625
    assert r["class_iou"][2] == 0.0
    assert r["miou"] == pytest.approx((0.5 + 0.0 + 0.0) / 3)  # class 3 had no episode: it counts 0
    assert r["missing_classes"] == [3] and r["episodes"] == 3 and r["missing_rule"] == "zero"
    bg, fg = (0 + 4 + 0) / (3 + 4 + 1), (1 + 2 + 0) / (4 + 2 + 1)
    assert r["fbiou"] == pytest.approx((bg + fg) / 2)


def test_unknown_class_is_an_error():
    with pytest.raises(ValueError, match="class 7 is not one of"):
        FewShotEvaluator([1, 2]).add(t([[0]]), t([[0]]), 7)


def test_update_with_logits_at_input_resolution():
    ev = FewShotEvaluator([1], ori_resize=False)
    logits = torch.zeros(2, 2, 2, 2)
    logits[0, 1] = 1.0  # sample 0: all foreground
    batch = {"query_mask": t([[[1, 0], [0, 0]], [[1, 1], [255, 0]]]), "class_id": t([1, 1])}
    ev.update(logits, batch)
    r = ev.result()
    # sample 0: I_fg 1 U_fg 4; sample 1 predicts background: I_fg 0 U_fg 2
    assert r["class_iou"][1] == pytest.approx(1 / 6)


def test_ori_resize_upsamples_to_the_longer_side_and_crops_the_canvas():
    ev = FewShotEvaluator([1], ori_resize=True)
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 1, :, 0] = 5.0  # left column foreground -> left half at any resolution
    logits[0, 0, :, 1] = 5.0
    ori = torch.full((1, 6, 6), 255, dtype=torch.int64)  # batch canvas larger than this label
    ori[0, :2, :4] = t([[1, 1, 0, 0], [1, 0, 0, 0]])     # original label 2 x 4 -> L = 4
    batch = {"query_mask_ori": ori, "ori_size": t([[2, 4]]), "class_id": t([1])}
    ev.update(logits, batch)
    # prediction at 4 x 4: columns 0-1 foreground; label row 0: 1 1 0 0, row 1: 1 0 0 0
    r = ev.result()
    assert r["class_iou"][1] == pytest.approx(3 / 4)
    assert r["fb_iou_bg_fg"][0] == pytest.approx(4 / 5)


def test_semantic_evaluator():
    ev = SemanticEvaluator(3, ori_resize=False)
    ev.add(t([[0, 1, 2, 2]]), t([[0, 1, 1, 255]]))
    r = ev.result()
    assert r["class_iou"] == {0: 1.0, 1: 0.5, 2: 0.0}
    assert r["miou"] == pytest.approx(0.25)  # base classes 1 and 2
    assert r["miou_with_background"] == pytest.approx(0.5)


def test_a_class_without_episodes_counts_zero_or_is_skipped():
    zero, skip = FewShotEvaluator([1, 2], ori_resize=False), FewShotEvaluator([1, 2], ori_resize=False, missing="skip")
    for ev in (zero, skip):
        ev.add(t([[1, 1, 0, 0]]), t([[1, 1, 1, 0]]), 1)  # IoU 2/3
    assert zero.result()["miou"] == pytest.approx(1 / 3) and skip.result()["miou"] == pytest.approx(2 / 3)
    assert zero.result()["missing_classes"] == skip.result()["missing_classes"] == [2]
    assert FewShotEvaluator([1]).result()["miou"] == 0.0
    assert math.isnan(FewShotEvaluator([1], missing="skip").result()["miou"])
    with pytest.raises(ValueError, match="missing 'drop' is invalid; expected one of zero, skip"):
        FewShotEvaluator([1], missing="drop")



def ragged_batch(sides, seed=0):
    """16 episodes whose original labels have different sizes, padded as collation pads them."""
    g = torch.Generator().manual_seed(seed)
    n, canvas = len(sides), max(max(s) for s in sides)
    ori = torch.full((n, canvas, canvas), 255, dtype=torch.int64)
    for i, (h, w) in enumerate(sides):
        label = torch.randint(0, 2, (h, w), generator=g)
        label[0, : w // 3] = 255
        ori[i, :h, :w] = label
    return {"query_mask_ori": ori, "ori_size": torch.tensor(sides),
            "query_mask": torch.randint(0, 2, (n, 9, 9), generator=g),
            "class_id": torch.tensor([1 + i % 3 for i in range(n)])}


@pytest.mark.parametrize("ori_resize", [True, False])
def test_batch_of_16_scores_like_one_episode_at_a_time(ori_resize):
    sides = [(7, 11), (11, 7), (11, 11), (5, 9), (9, 5), (13, 6), (7, 11), (6, 13)] * 2
    batch = ragged_batch(sides)
    logits = torch.randn(16, 2, 9, 9, generator=torch.Generator().manual_seed(1))
    batched = FewShotEvaluator([1, 2, 3], ori_resize=ori_resize)
    batched.update(logits, batch)
    single = FewShotEvaluator([1, 2, 3], ori_resize=ori_resize)
    for i in range(16):
        single.update(logits[i:i + 1], {k: v[i:i + 1] for k, v in batch.items()})
    assert torch.equal(batched.state, single.state)
    assert batched.result()["episodes"] == 16


def test_label_values_outside_the_binary_range_are_an_error():
    with pytest.raises(ValueError, match="label values must be in 0..1 or 255; got 2..2"):
        FewShotEvaluator([1]).add(t([[0, 1]]), t([[1, 2]]), 1)


def test_cpu_forward_runs_one_sample_at_a_time():
    from types import SimpleNamespace

    from engine.evaluate import predict

    class Doubler(torch.nn.Module):
        seen = []

        def forward(self, batch):
            self.seen.append(batch["query_img"].shape[0])
            x = batch["query_img"]
            return {"logits": x * 2, "logits_meta": x + 1, "aux": x.sum()}

    batch = {"query_img": torch.randn(5, 2, 3, 3), "query_name": list("abcde")}
    runtime = SimpleNamespace(device=torch.device("cpu"), autocast=lambda: torch.no_grad())
    out = predict(Doubler(), batch, runtime)
    assert Doubler.seen == [1] * 5 and set(out) == {"logits", "logits_meta"}
    assert torch.equal(out["logits"], batch["query_img"] * 2)
