"""What trains in a backbone, per stage: the table the training log starts with."""
from .resolver import unwrap


class FinetuneSummary:
    """What trains after svf.finetune: `per_stage` maps each stage to (trainable, total)
    parameter counts; `trainable` / `total` are the sums; str() is a table for the log."""

    def __init__(self, mode, description, per_stage):
        self.mode, self.description, self.per_stage = mode, description, per_stage
        self.trainable = sum(t for t, _ in per_stage.values())
        self.total = sum(n for _, n in per_stage.values())

    def __str__(self):
        lines = [f"backbone fine-tuning: {self.description}",
                 f"{'stage':<8} {'trainable':>12} {'total':>12}"]
        for stage, (trainable, total) in self.per_stage.items():
            lines.append(f"{stage:<8} {trainable:>12,} {total:>12,}")
        share = 100.0 * self.trainable / max(self.total, 1)
        lines.append(f"{'all':<8} {self.trainable:>12,} {self.total:>12,}  ({share:.3f}% trains)")
        return "\n".join(lines)

    def __repr__(self):
        return f"FinetuneSummary(mode={self.mode!r}, trainable={self.trainable}, total={self.total})"


def stages_of(backbone):
    """The backbone's stage names: its `stages` attribute, else its direct children's names."""
    return tuple(getattr(backbone, "stages", None) or (name for name, _ in backbone.named_children()))


def summarise(backbone, mode="custom", description=None, stages=None):
    """Count trainable / total parameters per stage of `backbone` (buffers, such as the
    rotation control's fixed matrices, are not parameters and are not counted)."""
    backbone = unwrap(backbone)
    stages = stages or stages_of(backbone)
    per_stage = {}
    for name in stages:
        params = list(getattr(backbone, name).parameters())
        per_stage[name] = (sum(p.numel() for p in params if p.requires_grad),
                           sum(p.numel() for p in params))
    return FinetuneSummary(mode, description or f"mode {mode}", per_stage)
