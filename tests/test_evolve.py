"""mrl_dna/evolve.py: the mutation log replays to the output, identity targets match the mutations made."""


import numpy as np
import pytest

from mrl_dna import dna
from mrl_dna.evolve import mutate


def _random_seq(rng, n, alphabet=dna.BASES):
    return rng.choice(np.array(alphabet, dtype=np.uint8), size=n)


def _apply_log(x, log):
    """Naive per-base replay of a mutation log: the reference the vectorised mutate must agree with."""
    sub = dict(zip(log.sub_pos.tolist(), log.sub_base.tolist()))
    dele = set(log.del_pos.tolist())
    ins, k = {}, 0
    for p, n in zip(log.ins_pos.tolist(), log.ins_len.tolist()):
        ins[p] = log.ins_bases[k : k + n].tolist()
        k += n
    out = []
    for i, b in enumerate(x.tolist()):
        if i not in dele:
            out.append(sub.get(i, b))
        out += ins.get(i, [])
    return np.array(out, dtype=np.uint8)


def _levenshtein(a, b):
    prev = np.arange(b.size + 1)
    for i in range(1, a.size + 1):
        cur = np.empty_like(prev)
        cur[0] = i
        cost = (a[i - 1] != b).astype(int)
        for j in range(1, b.size + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost[j - 1])
        prev = cur
    return int(prev[-1])


def test_mutate_rate_zero_is_identity():
    rng = np.random.default_rng(0)
    x = _random_seq(rng, 500)
    y, log = mutate(x, 0.0, rng)
    assert np.array_equal(x, y) and log.identity == 1.0 and log.columns == 500


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.25, 0.5])
def test_identity_target_matches_the_mutations_made(rate):
    rng = np.random.default_rng(int(rate * 100))
    x = _random_seq(rng, 3000)
    x[100:120] = dna.N  # N is never substituted
    y, log = mutate(x, rate, rng, indel_fraction=0.3, max_indel=3)
    # the log replays to exactly the output
    assert np.array_equal(_apply_log(x, log), y)
    # substitutions are real changes at A/C/G/T positions, never at deleted ones
    assert np.all(x[log.sub_pos] != log.sub_base)
    assert np.all(np.isin(x[log.sub_pos], dna.BASES))
    assert not set(log.sub_pos.tolist()) & set(log.del_pos.tolist())
    # identity recomputed by alignment-free counting: kept-and-unchanged bases / (source bases + inserted)
    kept = np.ones(x.size, dtype=bool)
    kept[log.del_pos] = False
    matches = int(kept.sum()) - log.sub_pos.size
    columns = x.size + int(log.ins_len.sum())  # every source base is one column, every inserted base one more
    assert y.size == x.size - log.del_pos.size + int(log.ins_len.sum())
    assert log.identity == pytest.approx(matches / columns)


def test_identity_bounds_the_edit_distance():
    rng = np.random.default_rng(7)
    for rate in (0.05, 0.2):
        x = _random_seq(rng, 150)
        y, log = mutate(x, rate, rng, indel_fraction=0.5)
        assert _levenshtein(x, y) <= log.n_sub + log.n_del + log.n_ins


def test_substitution_only_identity_tracks_the_rate():
    rng = np.random.default_rng(3)
    x = _random_seq(rng, 100_000)
    _, log = mutate(x, 0.1, rng, indel_fraction=0.0)
    assert log.n_del == log.n_ins == 0
    assert log.identity == pytest.approx(0.9, abs=0.005)
