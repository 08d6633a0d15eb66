"""BAM: shapes for 1 and 5 shots, the frozen base learner, the class-channel rule, the Gram
distance and shot weighting, the ensemble's initial state, the builder and its errors."""
import copy

import pytest
import torch

import svf as svf_lib

from engine.checkpoint import INFERENCE, save_checkpoint
from engine.choices import load_config
from model.backbone import build_backbone
from model.bam import BAM, build_bam, gram_matrix
from model.keymap import stage_children, upstream_state_dict
from model.pspnet import PSPNet
from model.registry import build_model
from tests.helpers.model import (PASCAL_FOLD0, PASCAL_FOLD0_BASE, head_grads, make_batch,
                                 randomise)
from util.data.folds import get_fold


@pytest.fixture(scope="module")
def base_learner():
    return randomise(PSPNet(build_backbone("resnet50"), num_classes=16), seed=1)


def make_bam(base_learner, shot=1, share=False, **kwargs):
    model = BAM(base_learner, PASCAL_FOLD0_BASE, shot=shot, reduce_dim=32, **kwargs)
    if share:
        model.backbone_frozen()
    return model


@pytest.mark.parametrize("batch_size, shot, share", [(2, 1, False), (1, 5, True)])
def test_forward_and_loss_shapes(base_learner, batch_size, shot, share):
    model = make_bam(base_learner, shot, share).train()
    model.backbone.requires_grad_(False)  # as under mode freeze: a cheap backward
    batch = make_batch(batch_size, shot, size=65)
    outputs = model(batch)
    assert outputs["logits"].shape == outputs["logits_meta"].shape == (batch_size, 2, 65, 65)
    assert outputs["base_logits"].shape == (batch_size, 16, 65, 65)
    assert sorted(k for k in outputs if k.startswith("logits")) == ["logits", "logits_meta"]
    loss, parts = model.loss(outputs, batch)
    assert set(parts) == {"loss", "main", "meta", "base"} and torch.isfinite(loss)
    assert torch.allclose(loss, parts["main"] + parts["meta"])  # aux weight 1, base not added
    loss.backward()
    assert all(g is not None for g in head_grads(model).values())
    assert (model.shot_reweight is not None) == (shot > 1)


def test_base_learner_stays_frozen_in_eval_mode(base_learner):
    model = make_bam(base_learner, share=False).train()
    assert model.training and model.down_query.training and model.backbone.training
    assert not any(m.training for m in model.base_learner.modules())
    stats = {k: v.clone() for k, v in model.base_learner.state_dict().items()}
    loss, _ = model.loss(model(make_batch(1, 1, size=49)), make_batch(1, 1, size=49))
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.base_learner.parameters())
    assert any(p.grad is not None for p in model.backbone.parameters())  # the meta copy trains
    assert all(torch.equal(v, stats[k]) for k, v in model.base_learner.state_dict().items())


def test_shared_and_separate_backbones(base_learner):
    shared, separate = make_bam(base_learner, share=True), make_bam(base_learner, share=False)
    assert shared.shares_backbone and shared.backbone is base_learner.backbone
    assert not separate.shares_backbone and separate.backbone is not base_learner.backbone
    keys = shared.state_dict().keys()
    assert keys == separate.state_dict().keys()  # one checkpoint layout for both
    assert any(k.startswith("base_learner.backbone.") for k in keys)
    batch = make_batch(1, 1, size=49, seed=2)
    with torch.no_grad():  # one pass (shared) or the copy's own pass: the same base prediction
        one, own = shared.eval()(batch)["base_logits"], separate.eval()(batch)["base_logits"]
    assert (one - own).abs().max() <= 1e-5 * one.abs().max()  # float rounding of the batch size only


def test_training_leaves_out_the_episode_class_channel(base_learner):
    model = make_bam(base_learner)
    prob = torch.rand(3, 16, 4, 4).softmax(1)
    class_id = torch.tensor([6, 20, 3])  # base channels 1 and 15; 3 is novel in fold 0
    everything = prob[:, 1:].sum(1, keepdim=True)
    assert torch.allclose(model.eval().base_object_map(prob, class_id), everything)
    trained = model.train().base_object_map(prob, class_id)
    assert torch.allclose(trained[0], everything[0] - prob[0, 1:2])
    assert torch.allclose(trained[1], everything[1] - prob[1, 15:16])
    assert torch.allclose(trained[2], everything[2])
    # another fold: base list 1..5, 11..20 -> class 11 is channel 6
    fold1 = BAM(copy.deepcopy(base_learner), list(range(1, 6)) + list(range(11, 21)), reduce_dim=8)
    assert fold1.base_channel[11] == 6 and fold1.base_channel[20] == 15 and fold1.base_channel[7] == 0


def test_gram_distance_and_shot_weights(base_learner):
    feat = torch.randn(2, 8, 5, 5)
    gram = gram_matrix(feat)
    assert torch.allclose(torch.diagonal(gram, dim1=1, dim2=2), torch.ones(2, 8), atol=1e-5)
    assert torch.allclose(gram_matrix(feat * 3.0), gram, atol=1e-5)  # scale-free
    model = make_bam(base_learner, shot=5, kshot_trans_dim=2)
    distance = torch.rand(3, 5)
    weights = model.shot_weights(distance)
    assert torch.allclose(weights.sum(1), torch.ones(3))
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert torch.allclose(model.shot_weights(distance[:, perm]), weights[:, perm], atol=1e-6)
    uniform = make_bam(base_learner, shot=5, kshot_trans_dim=0)  # starts at 1/shot: equal weights
    assert torch.allclose(uniform.shot_weights(distance), torch.full((3, 5), 0.2))
    assert torch.equal(make_bam(base_learner).shot_weights(distance[:, :1]), torch.ones(3, 1))


def test_ensemble_starts_as_the_meta_branch(base_learner):
    model = make_bam(base_learner)
    assert model.gram_merge.weight.flatten().tolist() == [1.0, 0.0] == model.cls_merge.weight.flatten().tolist()
    meta = torch.rand(2, 2, 4, 4).softmax(1)
    assert torch.equal(model.ensemble(meta, torch.rand(2, 1, 4, 4), torch.rand(2)), meta)


def test_learnable_parameters_match_the_paper(base_learner):
    """BAM paper: 4.9M learnable parameters (ResNet-50, reduce_dim 256)."""
    for shot in (1, 5):
        model = BAM(base_learner, PASCAL_FOLD0_BASE, shot=shot)
        learnable = sum(p.numel() for n, p in model.named_parameters()
                        if not n.startswith(("backbone.", "base_learner.")))
        assert round(learnable / 1e6, 1) == 4.9


def test_wrong_shot_count_is_a_clear_error(base_learner):
    with pytest.raises(ValueError, match="built for 5 shot"):
        make_bam(base_learner, shot=5)(make_batch(1, 3, size=33))


def bam_config(tmp_path, *overrides):
    weight = str(tmp_path / "PSPNet" / "{dataset}" / "split{split}" / "{backbone}" / "best.pth")
    return load_config("config/pascal_split0.yaml", ["arch=bam", "backbone=vgg16", "reduce_dim=32",
                                                     f"base_weight={weight}", *overrides])


def test_builder_loads_our_checkpoint_and_shares_only_when_frozen(tmp_path):
    trained = randomise(PSPNet(build_backbone("vgg16"), num_classes=16), seed=4)
    cfg = bam_config(tmp_path)
    save_checkpoint(str(tmp_path / "PSPNet/pascal/split0/vgg16/best.pth"), INFERENCE, trained.state_dict(), cfg)
    frozen, _ = build_model(bam_config(tmp_path, "mode=freeze"), PASCAL_FOLD0)
    assert frozen.shares_backbone
    svf, _ = build_model(bam_config(tmp_path, "mode=svf", "shot=5", "kshot_trans_dim=0"), PASCAL_FOLD0)
    assert not svf.shares_backbone and svf.shot_reweight.weight.shape == (5, 5, 1, 1)
    for model in (frozen, svf):
        merged = svf_lib.merge(copy.deepcopy(model)).state_dict()  # the SVD layers back to dense
        for key, value in trained.state_dict().items():
            assert torch.equal(model.base_learner.state_dict()[key], value)
            if key.startswith("backbone."):  # the meta backbone starts from the base learner's
                assert torch.allclose(merged[key], value, rtol=1e-4, atol=1e-6)


def test_builder_loads_bams_published_base_learner(tmp_path):
    """BAM's initmodel/PSPNet/.../best.pth: {'state_dict': ...}, `module.` prefixes, upstream names."""
    trained = randomise(PSPNet(build_backbone("vgg16"), num_classes=16), seed=5)
    upstream = upstream_state_dict("pspnet", trained.state_dict(), stage_children(trained.backbone))
    upstream.update({"encoder." + k[len("layer"):]: v for k, v in upstream.items() if k.startswith("layer")})
    path = tmp_path / "PSPNet/demo/split0/vgg16/best.pth"
    path.parent.mkdir(parents=True)
    torch.save({"epoch": 7, "state_dict": {"module." + k: v for k, v in upstream.items()}}, path)
    model = build_bam(bam_config(tmp_path, "exp_name=demo"), PASCAL_FOLD0)  # {dataset} = exp_name
    for key, value in trained.state_dict().items():
        assert torch.equal(model.base_learner.state_dict()[key], value)


def test_missing_base_learner_names_the_file(tmp_path):
    cfg = bam_config(tmp_path, "backbone=resnet50", "split=2")
    expected = str(tmp_path / "PSPNet/pascal/split2/resnet50/best.pth")
    with pytest.raises(FileNotFoundError) as info:
        build_bam(cfg, get_fold("pascal", 2))
    message = str(info.value)
    assert "\n" not in message and message.startswith(expected) and "train stage 1" in message
    with pytest.raises(ValueError, match="base_weight"):
        build_bam(cfg.replace(base_weight="initmodel/{fold}/best.pth"), PASCAL_FOLD0)
    with pytest.raises(ValueError, match="base_weight is empty"):
        build_bam(cfg.replace(base_weight=""), PASCAL_FOLD0)
    assert load_config("config/pascal_split0.yaml").base_weight == \
        "initmodel/PSPNet/{dataset}/split{split}/{backbone_folder}/best.pth"
