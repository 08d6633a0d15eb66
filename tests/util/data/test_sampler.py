"""Sharded sampling: what P processes see together is what one process sees."""
from util.data.sampler import ShardedSampler


def test_shards_interleave_into_the_single_process_order():
    single = list(ShardedSampler(10, shuffle=True, seed=3))
    shards = [list(ShardedSampler(10, shuffle=True, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == sorted(single)
    # step s of a per-process batch of 2 == step s of a single-process batch of 4
    for s in range(2):
        assert sorted(shards[0][2 * s:2 * s + 2] + shards[1][2 * s:2 * s + 2]) == sorted(single[4 * s:4 * s + 4])


def test_order_depends_on_seed_and_epoch_only():
    a, b = ShardedSampler(50, shuffle=True, seed=1), ShardedSampler(50, shuffle=True, seed=1)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b) and sorted(a) == sorted(b)


def test_num_samples_draws_a_fresh_subset_or_cycles():
    a = ShardedSampler(10, shuffle=True, seed=0, num_samples=4)
    first = list(a)
    a.set_epoch(1)
    assert len(first) == 4 and len(set(first)) == 4 and list(a) != first
    long = list(ShardedSampler(3, shuffle=True, seed=0, num_samples=7))
    assert len(long) == 7 and sorted(long[:3]) == [0, 1, 2] and sorted(long[3:6]) == [0, 1, 2]


def test_evaluation_covers_every_item_once():
    shards = [list(ShardedSampler(7, shuffle=False, rank=r, world_size=3, drop_last=False)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(7))
    assert [len(ShardedSampler(7, False, rank=r, world_size=3, drop_last=False)) for r in range(3)] == [3, 2, 2]
