"""MetaLearner's extra weighted support and the episodes rebuilt from computed features
(model/meta_learner.py, model/support_views.py)."""
import pytest
import torch

from model.meta_learner import ExtraSupport
from model.support_views import (as_support, episode, on_diagonal, query_part, shared_supports, support_part,
                                 supports_as_queries, swapped_supports)
from tests.helpers.eft import ARCHS, small_model
from tests.helpers.model import make_batch

SIZE = 33


@pytest.fixture(scope="module", params=ARCHS)
def model(request):
    return small_model(request.param, shot=2)


def test_an_extra_support_of_weight_zero_changes_nothing(model):
    batch = make_batch(1, 2, size=SIZE, seed=1)
    with torch.no_grad():
        feats = model.encode(batch)
        plain = model.decode(feats, (SIZE, SIZE))
        lent = as_support(model, query_part(feats), (batch["query_mask"] == 1).float())
        extra = episode(query_part(feats), [lent])
        none = model.decode(feats, (SIZE, SIZE), extra=ExtraSupport(extra, 0.0))
        some = model.decode(feats, (SIZE, SIZE), extra=ExtraSupport(extra, 0.5))
    assert torch.equal(none["logits"], plain["logits"])
    assert not torch.allclose(some["logits"], plain["logits"])


def test_decode_meta_is_the_meta_learners_own_output(model):
    """BAM, MSANet: the meta branch, computed without the base learner's outputs; the others:
    their prediction."""
    batch = make_batch(1, 2, size=SIZE, seed=4)
    with torch.no_grad():
        feats = model.encode(batch)
        full = model.decode(feats, (SIZE, SIZE))
        feats.frozen = {}
        meta = model.decode_meta(feats, (SIZE, SIZE))
    assert torch.equal(meta, full.get("logits_meta", full["logits"]))


def test_a_support_as_the_query_is_the_swapped_episode_encoded_afresh(model):
    """Support 0 as the query, the query (under its label) in its place: the view built from
    the features at hand equals encoding that episode from the images."""
    batch = make_batch(1, 2, size=SIZE, seed=2)
    swapped = {"query_img": batch["support_imgs"][:, 0],
               "support_imgs": torch.stack([batch["query_img"], batch["support_imgs"][:, 1]], 1),
               "support_masks": torch.stack([batch["query_mask"], batch["support_masks"][:, 1]], 1),
               "class_id": batch["class_id"]}
    with torch.no_grad():
        feats = model.encode(batch)
        supports = support_part(feats)
        queries = supports_as_queries(model, supports, batch["support_imgs"][0])
        lent = as_support(model, query_part(feats), (batch["query_mask"] == 1).float())
        view = model.decode(episode(queries.select(0, 1), [lent, supports.select(1, 2)]), (SIZE, SIZE))
        fresh = model(swapped)
    for key in fresh:
        if key.startswith("logits"):
            torch.testing.assert_close(view[key], fresh[key], rtol=1e-4, atol=1e-4)


def swapped_episode(batch, i, mask):
    """Support i as the query, the query under `mask` in its place, from the images."""
    supports, masks = batch["support_imgs"].clone(), batch["support_masks"].clone()
    supports[:, i], masks[:, i] = batch["query_img"], mask
    return {"query_img": batch["support_imgs"][:, i], "support_imgs": supports, "support_masks": masks,
            "class_id": batch["class_id"]}


def test_all_swapped_episodes_in_one_batch_are_each_encoded_afresh(model):
    """Support i as the query of episode i, the query in its place: one batch of K episodes
    built from the features at hand, its cues from the shared supports' (computed once) and the
    lent query's own, equals encoding each swapped episode from the images; twice, with
    another query mask the second time (the shared cues reused)."""
    batch = make_batch(1, 2, size=SIZE, seed=3)
    other = torch.zeros_like(batch["query_mask"])
    other[:, 4:20, 9:30] = 1
    with torch.no_grad():
        feats = model.encode(batch)
        supports = support_part(feats)
        queries = supports_as_queries(model, supports, batch["support_imgs"][0])
        shared = model.frozen_cues(shared_supports(queries, supports))
        for mask in (batch["query_mask"], other):
            lent = as_support(model, query_part(feats), (mask == 1).float())
            own = model.frozen_cues(episode(queries, [lent.repeated(2)]))
            views = model.decode(swapped_supports(queries, supports, lent, on_diagonal(shared, own)), (SIZE, SIZE))
            for i in range(2):
                fresh = model(swapped_episode(batch, i, mask))
                for key in fresh:
                    if key.startswith("logits"):
                        torch.testing.assert_close(views[key][i:i + 1], fresh[key], rtol=1e-4, atol=1e-4)
