"""The prior mask (model/common.py): only the support positions with a non-zero feature enter
its product; the result is PFENet's rule over every position, shot by shot."""
import torch

from model.common import COSINE_EPS, packed_positions, prior_mask, resize


def direct_prior(query, support, out_size):
    """PFENet's rule for one shot over every support position: query [B, C, h, w], support
    [B, C, h', w'] (already masked) -> [B, 1, *out_size]."""
    b, c = query.shape[:2]
    q = query.reshape(b, c, -1)
    s = support.reshape(b, c, -1).transpose(1, 2)
    sim = torch.bmm(s, q) / (torch.bmm(s.norm(dim=2, keepdim=True), q.norm(dim=1, keepdim=True)) + COSINE_EPS)
    sim = sim.max(1)[0]
    lo, hi = sim.min(1, keepdim=True)[0], sim.max(1, keepdim=True)[0]
    sim = (sim - lo) / (hi - lo + COSINE_EPS)
    return resize(sim.reshape(b, 1, *query.shape[2:]), out_size)


def test_packed_positions_put_the_kept_first_in_order():
    keep = torch.tensor([[False, True, False, True], [False, False, False, False], [True, True, True, False]])
    index, valid = packed_positions(keep)
    assert index.tolist() == [[1, 3, 0], [0, 1, 2], [0, 1, 2]]
    assert valid.tolist() == [[True, True, False], [False, False, False], [True, True, True]]


def test_prior_equals_the_rule_over_every_position():
    """Shots fully masked in, partly, not at all; features of both signs, so that the 0 of the
    masked-out positions decides the maximum where every similarity is negative."""
    gen = torch.Generator().manual_seed(0)
    query = torch.randn(2, 16, 5, 5, generator=gen)
    support = torch.randn(2, 4, 16, 6, 6, generator=gen)
    masks = torch.zeros(2, 4, 1, 6, 6)
    masks[:, 0] = 1                         # no position masked out
    masks[:, 1, :, 1:4, 2:5] = 1            # some
    masks[0, 2, :, 3, 3] = 1                # a single position
    support[0, 2, :, 3, 3] = -query[0, :, 2, 2]  # every similarity to it is negative for one query pixel
    got = prior_mask(query, support * masks, (7, 7))
    assert got.shape == (2, 4, 1, 7, 7)
    for k in range(4):
        torch.testing.assert_close(got[:, k], direct_prior(query, support[:, k] * masks[:, k], (7, 7)))
    assert torch.equal(got[:, 3], torch.zeros(2, 1, 7, 7))  # an empty mask: no prior
    # the single position alone: nothing pads it with a masked-out one, the 0 must still count
    alone = prior_mask(query[:1], (support * masks)[:1, 2:3], (7, 7))
    torch.testing.assert_close(alone[:, 0], direct_prior(query[:1], support[:1, 2] * masks[:1, 2], (7, 7)))


def test_prior_gradients_equal_the_rules_and_stay_finite():
    """Masked-out positions are zero vectors, whose norm has no derivative at 0: the gradients
    must still be the rule's (finite), for the query and the support features alike."""
    gen = torch.Generator().manual_seed(1)
    masks = torch.zeros(1, 2, 1, 6, 6)
    masks[:, 0, :, 1:4, 2:5] = 1
    masks[:, 1, :, 2, 2:4] = 1
    weights = torch.rand(1, 2, 1, 7, 7, generator=gen)
    grads = []
    for direct in (False, True):
        query = torch.randn(1, 16, 5, 5, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
        support = torch.randn(1, 2, 16, 6, 6, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
        if direct:
            prior = torch.stack([direct_prior(query, support[:, k] * masks[:, k], (7, 7)) for k in range(2)], 1)
        else:
            prior = prior_mask(query, support * masks, (7, 7))
        (prior * weights).sum().backward()
        grads.append((query.grad, support.grad))
    for got, expected in zip(*grads):
        assert torch.isfinite(got).all() and got.abs().sum() > 0
        torch.testing.assert_close(got, expected)
