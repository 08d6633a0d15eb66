"""tools.bench_eft at a tiny size: its per-shot lines, the counted passes and the last line."""
import re

from tools import bench_eft


def test_bench_eft_counts_one_backbone_pass_per_image(capsys):
    bench_eft.main(["--arch", "bam", "--mode", "freeze", "--size", "33", "--shots", "1", "2", "--episodes", "1",
                    "--repeats", "1", "--warmup", "0"])
    lines = capsys.readouterr().out.strip().splitlines()
    last = re.fullmatch(r"eft_vs_plain_1shot=(\d+\.\d\d) eft_vs_plain_2shot=(\d+\.\d\d) "
                        r"backbone_passes_1shot=(\d+) backbone_passes_2shot=(\d+)", lines[-1])
    assert last, lines[-1]
    assert (last[3], last[4]) == ("2", "3")
    assert float(last[1]) > 0 and float(last[2]) > 0
    assert any("published procedure (counted from its code): 32 backbone passes/episode; here 2" in l for l in lines)
    # mode freeze: BAM's base learner shares the backbone, so nothing else runs a backbone
    assert not any("base learner backbone" in l for l in lines)
    assert any(l.strip().startswith("eft   backbone: 3 passes/episode (layer0-3), layer4 ") for l in lines)
