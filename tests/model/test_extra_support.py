"""MetaLearner's extra weighted support and the episodes rebuilt from computed features
(model/meta_learner.py, model/support_views.py)."""
import pytest
import torch

from model.meta_learner import ExtraSupport
from model.support_views import as_support, episode, query_part, support_part, supports_as_queries
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
