"""The published MSANet checkpoint as an independent description, for the key-map tests: its key
names and shapes written out from the upstream module tree (layer0..4 from PSPNet's backbone,
learner_base = (ppm, cls), BAM's meta modules, gam, hyper_final), where each tensor must land in
our model, and what each upstream module computes (reference functions over the upstream
tensors, by upstream name). Nothing here reads model/keymap.py."""
import torch
import torch.nn.functional as F

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
RESNET_BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}
VGG_STAGES = (((0, 3, 64), (3, 64, 64)), ((0, 64, 128), (3, 128, 128)),
              ((0, 128, 256), (3, 256, 256), (6, 256, 256)), ((0, 256, 512), (3, 512, 512), (6, 512, 512)),
              ((0, 512, 512), (3, 512, 512), (6, 512, 512)))  # (child j, in, out) per stage
VGG_FIRST_INDEX = (0, 7, 14, 24, 34)  # where each stage starts in torchvision's `features`
RESNET_STEM = {0: "conv1", 1: "bn1", 3: "conv2", 4: "bn2", 6: "conv3", 7: "bn3"}


def _bn(name, c):
    return {f"{name}.{k}": (() if k == "num_batches_tracked" else (c,)) for k in BN}


def _conv(name, cout, cin, k, bias=False):
    return {f"{name}.weight": (cout, cin, k, k), **({f"{name}.bias": (cout,)} if bias else {})}


def backbone_shapes(backbone):
    """Upstream backbone keys -> shapes (layer0..4 as plain nn.Sequential children)."""
    shapes = {}
    if backbone == "vgg16":
        for s, convs in enumerate(VGG_STAGES):
            for j, cin, cout in convs:
                shapes |= _conv(f"layer{s}.{j}", cout, cin, 3, bias=True) | _bn(f"layer{s}.{j + 1}", cout)
        return shapes
    for j, cin, cout in ((0, 3, 64), (3, 64, 64), (6, 64, 128)):
        shapes |= _conv(f"layer0.{j}", cout, cin, 3) | _bn(f"layer0.{j + 1}", cout)
    cin = 128
    for stage, (count, planes) in enumerate(zip(RESNET_BLOCKS[backbone], (64, 128, 256, 512)), start=1):
        for b in range(count):
            p = f"layer{stage}.{b}"
            shapes |= _conv(f"{p}.conv1", planes, cin, 1) | _bn(f"{p}.bn1", planes)
            shapes |= _conv(f"{p}.conv2", planes, planes, 3) | _bn(f"{p}.bn2", planes)
            shapes |= _conv(f"{p}.conv3", 4 * planes, planes, 1) | _bn(f"{p}.bn3", 4 * planes)
            if b == 0:
                shapes |= _conv(f"{p}.downsample.0", 4 * planes, cin, 1) | _bn(f"{p}.downsample.1", 4 * planes)
            cin = 4 * planes
    return shapes


def msanet_shapes(backbone, shot=1, dim=256, classes=16):
    """Every key of a published MSANet state dict (no `module.`) -> its shape. Upstream fixes
    dim (reduce_dim) at 256; smaller values keep the tests fast."""
    vgg = backbone == "vgg16"
    top, mid = (512, 768) if vgg else (2048, 1536)
    maps = 7 if vgg else 4 + RESNET_BLOCKS[backbone][2] + 3
    shapes = backbone_shapes(backbone)
    for i in range(4):
        branch = f"learner_base.0.features.{i}"
        shapes |= _conv(f"{branch}.1", top // 4, top, 1) | _bn(f"{branch}.2", top // 4)
    shapes |= _conv("learner_base.1.0", 512, 2 * top, 3) | _bn("learner_base.1.1", 512)
    shapes |= _conv("learner_base.1.4", classes, 512, 1, bias=True)
    shapes |= _conv("down_query.0", dim, mid, 1) | _conv("down_supp.0", dim, mid, 1)
    shapes |= _conv("init_merge.0", dim, 3 * dim + 64 + 1, 1)
    for i in range(5):
        shapes |= _conv(f"ASPP_meta.layer6_{i}.0", dim, dim, 1 if i < 2 else 3, bias=True)
    shapes |= _conv("res1_meta.0", dim, 5 * dim, 1) | _conv("res2_meta.0", dim, dim, 3)
    shapes |= _conv("res2_meta.2", dim, dim, 3) | _conv("cls_meta.0", dim, dim, 3)
    shapes |= _conv("cls_meta.3", 2, dim, 1, bias=True)
    shapes |= _conv("gram_merge", 1, 2, 1) | _conv("cls_merge", 1, 2, 1)
    if shot > 1:
        shapes |= _conv("kshot_rw.0", 2, shot, 1, bias=True) | _conv("kshot_rw.2", shot, 2, 1, bias=True)
    shapes |= _conv("gam.gate.0", dim, dim, 1, bias=True) | _conv("gam.gate.2", dim, dim, 1, bias=True)
    shapes |= _conv("hyper_final.0", 64, maps, 1, bias=True) | _bn("hyper_final.1", 64)
    return shapes


def random_state(shapes, seed=0):
    """Distinct random tensors of the given shapes (BatchNorm variances positive)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.randint(1, 10 ** 6, (), generator=gen)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.05
    return state


def our_backbone_key(backbone, key):
    """Where an upstream backbone key belongs in our backbone (stage children by name)."""
    stage, child, rest = key.split(".", 2)
    if backbone == "vgg16":
        return f"{stage}.{int(child) + VGG_FIRST_INDEX[int(stage[-1])]}.{rest}"
    return f"{stage}.{RESNET_STEM[int(child)]}.{rest}" if stage == "layer0" else key


# What the upstream modules compute, from the upstream tensors U (eval mode).
def conv(U, name, x, **kwargs):
    return F.conv2d(x, U[f"{name}.weight"], U.get(f"{name}.bias"), **kwargs)


def bn(U, name, x):
    return F.batch_norm(x, U[f"{name}.running_mean"], U[f"{name}.running_var"], U[f"{name}.weight"],
                        U[f"{name}.bias"], training=False, eps=1e-5)


def meta_head(U, merged):
    """init_merge, ASPP_meta (pooled 1x1, 1x1, 3x3 at dilation 6 / 12 / 18), res1, res2, cls_meta."""
    x = F.relu(conv(U, "init_merge.0", merged))
    pooled = F.relu(conv(U, "ASPP_meta.layer6_0.0", x.mean((2, 3), keepdim=True))).expand_as(x)
    branches = [pooled, F.relu(conv(U, "ASPP_meta.layer6_1.0", x))]
    for i, d in ((2, 6), (3, 12), (4, 18)):
        branches.append(F.relu(conv(U, f"ASPP_meta.layer6_{i}.0", x, padding=d, dilation=d)))
    x = F.relu(conv(U, "res1_meta.0", torch.cat(branches, 1)))
    x = F.relu(conv(U, "res2_meta.2", F.relu(conv(U, "res2_meta.0", x, padding=1)), padding=1)) + x
    return conv(U, "cls_meta.3", F.relu(conv(U, "cls_meta.0", x, padding=1)))


def base_learner(U, layer4):
    """learner_base: PPM (bins 1, 2, 3, 6) then cls."""
    outs = [layer4]
    for i, b in enumerate((1, 2, 3, 6)):
        p = f"learner_base.0.features.{i}"
        y = F.relu(bn(U, f"{p}.2", conv(U, f"{p}.1", F.adaptive_avg_pool2d(layer4, b))))
        outs.append(F.interpolate(y, layer4.shape[-2:], mode="bilinear", align_corners=True))
    x = F.relu(bn(U, "learner_base.1.1", conv(U, "learner_base.1.0", torch.cat(outs, 1), padding=1)))
    return conv(U, "learner_base.1.4", x)


def ensemble(U, meta_prob, base_map, est_map):
    bg = conv(U, "gram_merge", torch.cat([meta_prob[:, :1], est_map], 1))
    fg = conv(U, "gram_merge", torch.cat([meta_prob[:, 1:], est_map], 1))
    return torch.cat([conv(U, "cls_merge", torch.cat([bg, base_map], 1)), fg], 1)


def attention(U, feat, mask):
    gate = conv(U, "gam.gate.2", F.relu(conv(U, "gam.gate.0", (feat * mask).mean((2, 3), keepdim=True))))
    return torch.sigmoid(gate) * feat


def similarity_fuse(U, maps):
    return F.relu(bn(U, "hyper_final.1", conv(U, "hyper_final.0", maps)))


def shot_reweight(U, distances):
    return conv(U, "kshot_rw.2", F.relu(conv(U, "kshot_rw.0", distances)))
