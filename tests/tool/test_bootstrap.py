"""The block bootstrap's intervals (tool/bootstrap.py) on cases with a known answer."""
import numpy as np
import pytest

import lstm_memory
from tool import bootstrap
from tool.bootstrap import SEP, BlockSums

H, E, K = 3, 2, 1


def blocks_with_means(means_per_block, counts_per_block):
    """BlockSums of one labeling "tag" with classes a, b whose block means are given:
    means_per_block (nb, 2 classes, H, E) for both delays and states."""
    nb = len(means_per_block)
    counts = np.zeros((nb, K + 1, 3), np.int64)                    # classes: all, a, b
    counts[:, :, 1:] = np.asarray(counts_per_block)[:, None, :]
    counts[:, :, 0] = counts[:, :, 1:].sum(axis=2)
    sums = np.zeros((nb, K + 1, 3, 2 * H, E))
    for c in (1, 2):
        G = np.asarray(means_per_block)[:, c - 1]                 # (nb, H, E)
        sums[:, :, c] = np.concatenate([G, G], axis=1)[:, None] * counts[:, :, c, None, None]
    sums[:, :, 0] = sums[:, :, 1] + sums[:, :, 2]
    return BlockSums({"tag": ["a", "b"]}, K, H, E, sums, counts)


def sigma1_of(means, labeling="tag", cls=0):
    return lstm_memory.singular_values(means.G_bar_per_class(labeling, "c")[cls, 0])[0]


def test_the_blocks_weighted_are_the_weighted_mean():
    rng = np.random.default_rng(0)
    block_means = rng.normal(size=(4, 2, H, E))
    blocks = blocks_with_means(block_means, rng.integers(1, 9, (4, 2)))
    weights = np.array([2, 0, 1, 1])
    n = weights * blocks.counts[:, 0, 1]                            # positions of class a
    expected = (block_means[:, 0] * n[:, None, None]).sum(0) / n.sum()
    np.testing.assert_allclose(blocks.means(weights).G_bar_per_class("tag", "h")[0, 1], expected)
    assert blocks.means(weights).count("tag")[0, 1] == n.sum()


def test_draws_resample_every_block_count():
    draws = bootstrap.draws(500, 7, seed=3)
    assert draws.shape == (500, 7) and (draws.sum(axis=1) == 7).all()
    assert abs(draws.mean() - 1) < 0.05                                # each block once on average
    np.testing.assert_array_equal(draws, bootstrap.draws(500, 7, seed=3))   # the same for every LM
    assert bootstrap.draws(0, 7).shape == (0, 7)


def test_a_constant_signal_has_an_interval_of_zero_width():
    G = np.arange(H * E, dtype=float).reshape(H, E)
    blocks = blocks_with_means(np.broadcast_to(G, (6, 2, H, E)), np.arange(1, 13).reshape(6, 2))
    values = [sigma1_of(blocks.means(w)) for w in bootstrap.draws(200, 6)]
    low, high = bootstrap.interval(values)
    assert high - low < 1e-12 and abs(low - np.linalg.svd(G, compute_uv=False)[0]) < 1e-12


def test_the_interval_of_a_mean_has_the_textbook_width():
    """Block means N(5, 1) with equal counts: the interval of their mean is about the normal
    one, 5 +- 1.96 s / sqrt(nb)."""
    rng = np.random.default_rng(1)
    nb = 40
    values = 5 + rng.normal(size=nb)
    block_means = np.zeros((nb, 2, H, E))
    block_means[:, 0, 0, 0] = values                                  # a rank-1 G: sigma_1 = |mean|
    blocks = blocks_with_means(block_means, np.full((nb, 2), 10))
    low, high = bootstrap.interval([sigma1_of(blocks.means(w)) for w in bootstrap.draws(2000, nb)])
    half = 1.96 * values.std(ddof=1) / np.sqrt(nb)
    assert low < values.mean() < high
    assert abs((high - low) / 2 - half) < 0.15 * half


@pytest.mark.parametrize("gap, separated", [(1.0, True), (0.0, False)])
def test_a_planted_difference_between_classes_is_separated(gap, separated):
    """Class a's gradients are larger than class b's by ``gap`` (noise 0.3 per block): the
    interval of sigma_1(a) - sigma_1(b) excludes zero exactly when there is a gap."""
    rng = np.random.default_rng(2)
    base = np.zeros((H, E))
    base[0, 0] = 2.0
    block_means = np.stack([np.stack([base * (1 + gap / 2) + 0.3 * rng.normal(size=(H, E)),
                                      base + 0.3 * rng.normal(size=(H, E))]) for _ in range(20)])
    blocks = blocks_with_means(block_means, rng.integers(5, 15, (20, 2)))
    point = {"a": sigma1_of(blocks.means(), cls=0), "b": sigma1_of(blocks.means(), cls=1)}
    reps = [{"a": sigma1_of(m, cls=0), "b": sigma1_of(m, cls=1)}
            for m in (blocks.means(w) for w in bootstrap.draws(1000, 20))]
    value, low, high = bootstrap.difference(point, point, reps, reps, "a", "b")
    assert low <= value <= high
    assert (low > 0) == separated and high > 0


def test_leaves_and_the_differences_an_order_claim_needs():
    result = {"spectrum": {"c": {"sigma1": [4.0, 2.0], "sum": [8.0, 5.0], "top_n": [6.0, 4.0]}},
              "table1": {"c": {"nouns": {"sigma1": 2.0, "normalised": 0.5, "count": 9},
                               "conj./prep.": {"sigma1": 1.5, "normalised": 0.5, "count": 4}}},
              "table1_bands": {"c": {"nouns | rank 1-100": {"sigma1": 1.0, "count": 3},
                                     "conj./prep. | rank 1-100": {"sigma1": 3.0, "count": 2},
                                     "nouns | rank 101-1000": {"sigma1": 5.0, "count": 1}}},
              "figure2": {"c": {"p": {"m": [0.5, None]}, "q": {"m": [0.25, 0.5]}}}}
    point = bootstrap.leaves(result)
    assert point[SEP.join(("spectrum", "c", "share1", "1"))] == 0.4
    assert point[SEP.join(("spectrum", "c", "fall", "1"))] == 2.0
    assert point[SEP.join(("table1", "c", "conj./prep.", "sigma1"))] == 1.5
    assert np.isnan(point[SEP.join(("figure2", "c", "p", "m", "1"))])
    assert not any("count" in path for path in point)
    shifted = [{k: v + s for k, v in point.items()} for s in np.linspace(-0.1, 0.1, 101)]
    out = bootstrap.within_model(point, shifted, ["c"], ["p", "q"])
    np.testing.assert_allclose(out[SEP.join(("table1", "c", "nouns - conj./prep.", "sigma1"))],
                               [0.5, 0.5, 0.5])
    assert out[SEP.join(("table1_bands", "c", "nouns - conj./prep. | rank 1-100", "sigma1"))][0] == -2
    assert not any(" - " in path.split(SEP)[2].split(" | ")[0] and "101-1000" in path
                   for path in out)                                   # one class in that band
    np.testing.assert_allclose(out[SEP.join(("table1_bands", "c",
                                             "nouns | rank 101-1000 - rank 1-100", "sigma1"))],
                               [4.0] * 3)                             # a later band - the first
    np.testing.assert_allclose(out[SEP.join(("spectrum", "c", "share1", "1 - 0"))], [-0.1] * 3)
    np.testing.assert_allclose(out[SEP.join(("figure2", "c", "q", "m", "1 - 0"))], [0.25] * 3)
    assert point[SEP.join(("table1", "c", "spread", "normalised"))] == 0.0
    np.testing.assert_allclose(out[SEP.join(("figure2", "c", "p - q", "m", "0"))], [0.25] * 3)
    assert out[SEP.join(("figure2", "c", "p - q", "m", "1"))][1:] == [None, None]   # undefined


def test_table2_intervals_wilson_and_paired():
    """Wilson's interval of 8 right of 10 is [0.490, 0.943]; an LM right on the same words as
    the first has a difference of exactly zero, one right on 30 more of 100 words about 0.3."""
    same = np.array([True] * 8 + [False] * 2)
    rows = {"row": {"first": {"paper": 0.8, "honest": 0.8, "held_out": np.arange(10),
                              "correct": {"paper": same, "honest": same}},
                    "twin": {"paper": 0.8, "honest": 0.8, "held_out": np.arange(10),
                             "correct": {"paper": same, "honest": same}}}}
    labels = np.array([0] * 7 + [1] * 3)
    bootstrap.table2_intervals(rows, {"row": {n: (np.arange(10), labels) for n in rows["row"]}}, 500)
    assert rows["row"]["first"]["majority"] == 0.7
    np.testing.assert_allclose(rows["row"]["first"]["paper_ci"], [0.4902, 0.9433], atol=1e-4)
    assert rows["row"]["twin"]["honest_minus_first"] == [0.0, 0.0, 0.0]
    assert "correct" not in rows["row"]["first"]
    worse, better = np.zeros(100, bool), np.zeros(100, bool)
    worse[:40], better[:70] = True, True
    rows = {"row": {"a": {"paper": 0.4, "honest": 0.4, "held_out": np.arange(100),
                          "correct": {"paper": worse, "honest": worse}},
                    "b": {"paper": 0.7, "honest": 0.7, "held_out": np.arange(100),
                          "correct": {"paper": better, "honest": better}},
                    "other words": {"paper": 0.7, "honest": 0.7, "held_out": np.arange(100, 200),
                                    "correct": {"paper": better, "honest": better}}}}
    bootstrap.table2_intervals(rows, {"row": {n: (np.arange(200), None) for n in rows["row"]}}, 1000)
    value, low, high = rows["row"]["b"]["honest_minus_a"]
    assert value == pytest.approx(0.3) and 0.2 < low < 0.3 < high < 0.4
    assert "honest_minus_a" not in rows["row"]["other words"]        # not paired: no difference
