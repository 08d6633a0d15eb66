"""State-dict key names of the published PFENet / BAM / BAM-PSPNet / MSANet checkpoints <-> ours.

One table of prefix rules per architecture (docs/models.md prints them). A rule pairs an upstream
prefix with ours; `{i}` is an index copied across, shifted by the rule's offset (PFENet's
alpha_conv.0 serves the second scale: fem.1.inter). The backbone is mapped by position: the
upstream stages are plain nn.Sequential containers (layer0.0 = the stem's first conv), ours name
their children (layer0.conv1; VGG children keep their index in torchvision's `features`), so
upstream child j of stage s is our stage s's j-th child. Both directions come from the same
table: `to_ours` converts published files, `to_upstream` lets the tests build upstream-named
state dicts from our modules.
"""
import re
from dataclasses import dataclass

from model.backbone import STAGES
from util.state_dict import first_keys


@dataclass(frozen=True)
class Rule:
    upstream: str      # prefix template, e.g. "alpha_conv.{i}."
    ours: str          # prefix template, e.g. "fem.{i}.inter."
    offset: int = 0    # ours' {i} = upstream's {i} + offset

    def _regex(self, template):
        return re.compile(re.escape(template).replace(re.escape("{i}"), r"(\d+)"))

    def apply(self, key, source, target, shift):
        match = self._regex(source).match(key)
        if match is None:
            return None
        prefix = target
        if match.groups():
            index = int(match.group(1)) + shift
            if index < 0:
                return None
            prefix = target.replace("{i}", str(index))
        return prefix + key[match.end():]

    def forward(self, key):
        return self.apply(key, self.upstream, self.ours, self.offset)

    def backward(self, key):
        return self.apply(key, self.ours, self.upstream, -self.offset)


HEAD_RULES = {
    "pfenet": (
        Rule("down_query.", "down_query."),
        Rule("down_supp.", "down_supp."),
        Rule("init_merge.{i}.", "fem.{i}.merge."),
        Rule("alpha_conv.{i}.", "fem.{i}.inter.", offset=1),
        Rule("beta_conv.{i}.", "fem.{i}.refine."),
        Rule("inner_cls.{i}.", "fem.{i}.aux_cls."),
        Rule("res1.", "res1."),
        Rule("res2.", "res2."),
        Rule("cls.", "cls."),
    ),
    "pspnet": (
        Rule("ppm.features.{i}.1.", "ppm.branches.{i}.conv."),
        Rule("ppm.features.{i}.2.", "ppm.branches.{i}.bn."),
        Rule("cls.", "cls."),
    ),
    "bam": (
        Rule("learner_base.0.features.{i}.1.", "base_learner.ppm.branches.{i}.conv."),
        Rule("learner_base.0.features.{i}.2.", "base_learner.ppm.branches.{i}.bn."),
        Rule("learner_base.1.", "base_learner.cls."),
        Rule("down_query.", "down_query."),
        Rule("down_supp.", "down_supp."),
        Rule("init_merge.", "head.init_merge."),
        Rule("ASPP_meta.layer6_0.0.", "head.aspp.pool_proj."),
        Rule("ASPP_meta.layer6_{i}.0.", "head.aspp.branches.{i}.", offset=-1),
        Rule("res1_meta.", "head.res1."),
        Rule("res2_meta.", "head.res2."),
        Rule("cls_meta.", "head.cls."),
        Rule("gram_merge.", "gram_merge."),
        Rule("cls_merge.", "cls_merge."),
        Rule("kshot_rw.", "shot_reweight."),
    ),
}
# MSANet is BAM's module tree (same names) plus the attention gate and the similarity fusion.
HEAD_RULES["msanet"] = HEAD_RULES["bam"] + (
    Rule("gam.", "attention."),
    Rule("hyper_final.0.", "similarity_fuse.conv."),
    Rule("hyper_final.1.", "similarity_fuse.bn."),
)

# Where each architecture keeps the backbone(s) in our state dict. BAM's and MSANet's upstream
# models have one backbone shared by the meta and the base learner; ours always hold both names
# (one module when frozen, two copies otherwise), so an upstream backbone key fills both.
BACKBONE_PREFIXES = {
    "pfenet": ("backbone.",),
    "pspnet": ("backbone.",),
    "bam": ("backbone.", "base_learner.backbone."),
    "msanet": ("backbone.", "base_learner.backbone."),
}

# Upstream keys that carry no weights of their own: BAM's PSPNet registers its stages twice
# (layerN and encoder.N), the two hold the same tensors.
DUPLICATE_PREFIXES = {"pspnet": ("encoder.",), "pfenet": (), "bam": (), "msanet": ()}

ARCHS = tuple(HEAD_RULES)


def stage_children(backbone):
    """Stage name -> the names of its children in order (how positions map to our names)."""
    return {s: list(getattr(backbone, s)._modules) for s in STAGES}


def _check_arch(arch):
    if arch not in HEAD_RULES:
        raise ValueError(f"no key mapping for arch {arch!r}; expected one of {', '.join(ARCHS)}")


def to_ours(arch, key, children):
    """Our keys for one upstream key: a list (empty for a known duplicate), or None when no
    rule knows the key."""
    _check_arch(arch)
    if key.startswith(DUPLICATE_PREFIXES[arch]):
        return []
    stage_match = re.match(r"(layer[0-4])\.(\d+)\.", key)
    if stage_match:
        stage, position = stage_match.group(1), int(stage_match.group(2))
        if position >= len(children[stage]):
            return None
        rest = f"{stage}.{children[stage][position]}.{key[stage_match.end():]}"
        return [prefix + rest for prefix in BACKBONE_PREFIXES[arch]]
    for rule in HEAD_RULES[arch]:
        ours = rule.forward(key)
        if ours is not None:
            return [ours]
    return None


def to_upstream(arch, key, children):
    """The upstream key of one of our keys (None when no rule knows it)."""
    _check_arch(arch)
    for prefix in BACKBONE_PREFIXES[arch]:
        if key.startswith(prefix):
            stage, child, rest = key[len(prefix):].split(".", 2)
            if stage in children and child in children[stage]:
                return f"{stage}.{children[stage].index(child)}.{rest}"
            return None
    for rule in HEAD_RULES[arch]:
        upstream = rule.backward(key)
        if upstream is not None:
            return upstream
    return None


def convert_state_dict(arch, state, children, source="state dict"):
    """Rename a published checkpoint's state dict (no `module.` prefixes) to our names.

    Raises one ValueError naming `source` when keys are unknown or two keys land on one of ours."""
    converted, unknown, clashes = {}, [], []
    for key, value in state.items():
        targets = to_ours(arch, key, children)
        if targets is None:
            unknown.append(key)
            continue
        for target in targets:
            if target in converted:
                clashes.append(key)
            converted[target] = value
    problems = []
    if unknown:
        hint = " - is the backbone right?" if any(re.match(r"layer[0-4]\.", k) for k in unknown) else ""
        problems.append(f"keys no {arch} rule knows: {first_keys(unknown)}{hint}")
    if clashes:
        problems.append(f"keys mapped twice: {first_keys(clashes)}")
    if problems:
        raise ValueError(f"{source}: not a published {arch} checkpoint ({'; '.join(problems)})")
    return converted


def upstream_state_dict(arch, state, children):
    """Our state dict under the upstream names (the inverse mapping, used by the tests and to
    document the mapping). BAM's and MSANet's two backbone names collapse into upstream's one."""
    upstream = {}
    for key, value in state.items():
        name = to_upstream(arch, key, children)
        if name is None:
            raise ValueError(f"our key {key!r} has no upstream name for arch {arch}")
        if key.startswith(BACKBONE_PREFIXES[arch][1:]):
            continue  # the meta backbone's copy of the same upstream key wins
        upstream[name] = value
    return upstream
