"""Published PFENet and PSPNet checkpoints: every head tensor lands in the module that computes
what the upstream module of that name computes. The upstream computations below are written
from the upstream model definitions by name (eval mode); a one-to-one mix-up between tensors of
the same shape (two scales, two branches, query and support) passes the key and round-trip
tests but not these. BAM's and MSANet's heads: tests/model/test_keymap.py (misplaced)."""
import pytest
import torch
import torch.nn.functional as F

from model.keymap import HEAD_RULES, Rule
from model.weights import load_weights
from tests.model import upstream_msanet as upstream
from tests.model.test_keymap import build, published_file

conv = upstream.conv


def pfenet_upstream(U, scales=4):
    """name -> (function of U's tensors, input channels as a multiple of reduce_dim [+ extra])."""
    roles = {
        "down_query": lambda x: F.relu(conv(U, "down_query.0", x)),
        "down_supp": lambda x: F.relu(conv(U, "down_supp.0", x)),
        "res1": lambda x: F.relu(conv(U, "res1.0", x)),
        "res2": lambda x: F.relu(conv(U, "res2.2", F.relu(conv(U, "res2.0", x, padding=1)), padding=1)),
        "cls": lambda x: conv(U, "cls.3", F.relu(conv(U, "cls.0", x, padding=1)))}
    for i in range(scales):
        roles[f"init_merge.{i}"] = lambda x, i=i: F.relu(conv(U, f"init_merge.{i}.0", x))
        roles[f"beta_conv.{i}"] = lambda x, i=i: F.relu(conv(U, f"beta_conv.{i}.2", F.relu(
            conv(U, f"beta_conv.{i}.0", x, padding=1)), padding=1))
        roles[f"inner_cls.{i}"] = lambda x, i=i: conv(U, f"inner_cls.{i}.3", F.relu(
            conv(U, f"inner_cls.{i}.0", x, padding=1)))
        if i:  # upstream alpha_conv[i - 1] merges scale i with scale i - 1
            roles[f"alpha_conv.{i - 1}"] = lambda x, i=i: F.relu(conv(U, f"alpha_conv.{i - 1}.0", x))
    return roles


def pfenet_ours(model):
    ours = {"down_query": model.down_query, "down_supp": model.down_supp, "res1": model.res1,
            "res2": model.res2, "cls": model.cls}
    for i, branch in enumerate(model.fem):
        ours.update({f"init_merge.{i}": branch.merge, f"beta_conv.{i}": branch.refine,
                     f"inner_cls.{i}": branch.aux_cls})
        if i:
            ours[f"alpha_conv.{i - 1}"] = branch.inter
    return ours


def loaded(arch, tmp_path, **kwargs):
    U = published_file(build(arch, seed=0, **kwargs).eval(), arch, tmp_path / "published.pth")
    target = build(arch, seed=7, **kwargs).eval()
    load_weights(target, tmp_path / "published.pth", arch)
    return target, U


def first_conv_input(module):
    return next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d)).in_channels


def misplaced_pfenet(model, U):
    """The upstream names whose module in `model` computes something else."""
    theirs, ours = pfenet_upstream(U), pfenet_ours(model)
    assert sorted(theirs) == sorted(ours)
    gen = torch.Generator().manual_seed(3)
    wrong = []
    with torch.no_grad():
        for name, module in ours.items():
            x = torch.randn(1, first_conv_input(module), 6, 6, generator=gen)
            if not torch.allclose(module(x), theirs[name](x), atol=1e-5):
                wrong.append(name)
    return sorted(wrong)


def test_pfenet_head_tensors_do_what_their_upstream_names_do(tmp_path):
    assert misplaced_pfenet(*loaded("pfenet", tmp_path)) == []


@pytest.mark.parametrize("swap, caught", [
    ((Rule("down_query.", "down_supp."), Rule("down_supp.", "down_query.")), ["down_query", "down_supp"]),
    ((Rule("init_merge.0.", "fem.1.merge."), Rule("init_merge.1.", "fem.0.merge.")), ["init_merge.0", "init_merge.1"]),
    ((Rule("inner_cls.2.", "fem.3.aux_cls."), Rule("inner_cls.3.", "fem.2.aux_cls.")), ["inner_cls.2", "inner_cls.3"])])
def test_a_wrong_one_to_one_pfenet_rule_is_caught(tmp_path, monkeypatch, swap, caught):
    monkeypatch.setitem(HEAD_RULES, "pfenet", swap + HEAD_RULES["pfenet"])  # the first matching rule wins
    assert misplaced_pfenet(*loaded("pfenet", tmp_path)) == caught


def test_pspnet_head_tensors_do_what_their_upstream_names_do(tmp_path):
    model, U = loaded("pspnet", tmp_path)
    # BAM's base learner is this PSPNet under learner_base.0 (PPM) and learner_base.1 (cls)
    renamed = {k.replace("ppm.", "learner_base.0.", 1).replace("cls.", "learner_base.1.", 1): v
               for k, v in U.items() if k.startswith(("ppm.", "cls."))}
    layer4 = torch.randn(1, model.backbone.channels["layer4"], 7, 7, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.allclose(model.classify(layer4), upstream.base_learner(renamed, layer4), atol=1e-5)
