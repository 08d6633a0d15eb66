"""What test.py says about test-time adaptation (docs/eft.md): how often each round was chosen,
and plain against adapted mIoU on the same episodes, the oracle apart."""
import torch

from util.run_identity import RUNTIME_KEYS

PLAIN, ADAPTED, ORACLE = "logits", "logits_eft", "logits_eft_oracle"


class RoundCounts:
    """Episodes per chosen round (0 = the plain prediction, kept when no round could run), for
    the honest choice and, with the oracle, for the oracle's. Summed over DDP processes."""

    def __init__(self, rounds, oracle=False):
        self.rounds, self.oracle = rounds, oracle
        self.reset()

    def reset(self):
        self.state = torch.zeros(2, self.rounds + 1, dtype=torch.float64)

    def add(self, chosen, oracle=False):
        self.state[int(oracle), chosen] += 1

    def take(self):
        """{"chosen": [episodes per round], ("oracle_chosen": ...)} over every process; resets."""
        import torch.distributed as dist
        state = self.state
        if dist.is_available() and dist.is_initialized():
            state = state.to("cuda" if dist.get_backend() == "nccl" else "cpu")
            dist.all_reduce(state)
        counts = state.cpu().long().tolist()
        self.reset()
        out = {"chosen": counts[0]}
        if self.oracle:
            out["oracle_chosen"] = counts[1]
        return out


def histogram(counts):
    return " ".join(f"{r}:{n}" for r, n in enumerate(counts))


def seed_lines(seed, results, counts):
    """Log lines of one seed: the gain on its episodes and the round histogram(s)."""
    gain = results[ADAPTED]["miou"] - results[PLAIN]["miou"]
    lines = [f"seed {seed} eft: mIoU {results[ADAPTED]['miou']:.4f} vs plain {results[PLAIN]['miou']:.4f} "
             f"on the same episodes (gain {gain:+.4f}); rounds chosen {histogram(counts['chosen'])}"]
    if "oracle_chosen" in counts:
        lines.append(f"seed {seed} ORACLE (reads the query label; not a result): mIoU "
                     f"{results[ORACLE]['miou']:.4f}; rounds chosen {histogram(counts['oracle_chosen'])}")
    return lines


def summary_record(cfg, summary, per_seed_counts):
    """The record's "eft" entry: settings, plain and adapted mean mIoU, the gain, the summed
    round histogram(s), the oracle labelled as such."""
    keys = [k for k in RUNTIME_KEYS if k.startswith("eft_")]
    total = [sum(c) for c in zip(*(s["chosen"] for s in per_seed_counts))]
    record = {"settings": {k: getattr(cfg, k) for k in keys},
              "plain_miou": summary[PLAIN]["miou"]["mean"], "eft_miou": summary[ADAPTED]["miou"]["mean"],
              "gain": summary[ADAPTED]["miou"]["mean"] - summary[PLAIN]["miou"]["mean"],
              "rounds_chosen": total}
    if ORACLE in summary:
        record["oracle"] = {"note": "reads the query label to pick the round; an upper bound, not a result",
                            "miou": summary[ORACLE]["miou"]["mean"],
                            "rounds_chosen": [sum(c) for c in zip(*(s["oracle_chosen"] for s in per_seed_counts))]}
    return record


def summary_lines(record):
    lines = [f"eft ({record['settings']['eft_select'] if 'oracle' not in record else 's2q'}): mIoU "
             f"{record['eft_miou']:.4f} vs plain {record['plain_miou']:.4f} on the same episodes, gain "
             f"{record['gain']:+.4f}; rounds chosen {histogram(record['rounds_chosen'])}"]
    if "oracle" in record:
        lines.append(f"ORACLE (reads the query label; not a result): mIoU {record['oracle']['miou']:.4f}; "
                     f"rounds chosen {histogram(record['oracle']['rounds_chosen'])}")
    return lines
