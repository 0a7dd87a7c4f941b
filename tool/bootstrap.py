"""95 % intervals for every number of an analysis: a block bootstrap over the text's streams.

The analysed text is B contiguous streams (analyze.py --batch-size), cut into nb = min(B, 20)
blocks of whole streams (one stream each at the default B = 20); the sweep keeps each block's sums
and counts apart (BlockAccumulator, tool/parallel.py). A resample draws nb blocks with replacement; its Gbar are the drawn blocks' summed sums over their summed counts (a block drawn
twice counts twice), and ``analyze.model_results`` turns them into every output, exactly as for
the text itself. The interval of a number is the 2.5th to 97.5th percentile of its values over
the resamples (percentile bootstrap). Every LM is resampled with the same draws, so the
difference of two LMs' numbers on the same text is paired and has its interval too; so has the
difference of two classes' sigma_1 (an order) and of two properties' m and cos (Figure 2). The
resamples run on --workers threads (tool/parallel.py's ``resample``).

Cost: memory nb x one sweep's float64 sums (nb = 20, K = 30, 5 classes, H = 256, E = 64: 0.8 GB
per LM, also in the sweep cache); the sweep runs at about 0.65 of its speed (BlockAccumulator);
time R x model_results (SVDs only: no text is read again).
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np

import lstm_memory

LEVEL = 0.95
BLOCKS = 20                                         # the most blocks a text is cut into
STATISTICS = {"sigma1", "sum", "top_n", "share1", "share_n", "fall", "normalised", "r", "m",
              "cos_Hn", "r_abs"}                    # the leaves of results.json that get intervals
SEP = " / "          # between the parts of a path (class names may hold "/" or "|", not " / ")
SECTIONS = ("spectrum", "table1", "table1_bands", "figure2", "figure2_class", "frequency")


class BlockSums:
    """The sums and counts of one sweep, per block: sums (nb, K+1, C, S H, E) float64, counts
    (nb, K+1, C), in StateGradientSums' layout (labelings, offsets and states as there)."""

    def __init__(self, label_names: dict, K: int, H: int, E: int, sums, counts, states=("c", "h")):
        layout = lstm_memory.StateGradientSums(label_names, 0, 1, 1)        # names and offsets
        self.labelings, self.offsets, self.H, self.K = layout.labelings, layout.offsets, H, K
        self.sums, self.counts, self.states = sums, counts, tuple(states)

    def means(self, weights=None) -> Means:
        """Gbar over the blocks, block j counted weights[j] times (all once by default)."""
        return Means(self, np.ones(len(self.sums), np.int64) if weights is None else weights)


class BlockAccumulator:
    """StateGradientSums' ``add`` and ``flush`` with the sums kept per block of streams: what
    lstm_memory.sweep_state_gradients fills when given it as ``sums``.

    Where StateGradientSums adds a step's tangents to the class sums with one product (the
    streams' contributions summed), a block's sums must stay apart, so each stream's G_{t,k} is
    added to the rows (its block, state, k, class) of a float32 window: one indexed add per
    labeling, over streams that are in different blocks (the j-th stream of every block), so that
    no row is written twice; with one stream a block, "all" is one add in place. Equal to
    (tests/method/test_state_gradients.py::test_the_blocks_of_a_sweep_add_up_to_the_sweep):

        for name, labels in labels_at_source.items():
            for b, k in all (stream, delay) with labels[b, k] >= 0:
                sums[block[b], k, offset[name] + labels[b, k]] += [Jc[b, k]; Jh[b, k]]  # LSTM

    ``flush`` moves
    the window into the float64 sums, as there. With the indexed adds the sweep runs at about
    0.65 of its speed at the paper's size (docs/speed.md).
    """

    def __init__(self, label_names: dict, K: int, H: int, E: int, block_of_stream, xp=np,
                 states=("c", "h")):
        layout = lstm_memory.StateGradientSums(label_names, 0, 1, 1)        # names and offsets
        self.offsets, self.C = layout.offsets, sum(map(len, layout.labelings.values()))
        self.S = S = len(states)                                              # states (c, h)
        self.block = np.asarray(block_of_stream)                              # (B,) block ids
        n_blocks = int(self.block.max()) + 1
        self.xp, self.shape = xp, (n_blocks, K + 1, self.C, H, E)
        position = np.arange(len(self.block)) - np.searchsorted(self.block, self.block)  # (B,)
        self.groups = [slice(None)] if position.max() == 0 else [      # streams in distinct blocks
            xp.asarray(np.flatnonzero(np.repeat(position == j, S * (K + 1))))
            for j in range(position.max() + 1)]
        self.window = xp.zeros((n_blocks * S * (K + 1) * self.C + 1, E * H),   # (nb S (K+1) C + 1,
                               np.float32)                                     #  EH); last: trash
        self.sums = xp.zeros((n_blocks, K + 1, self.C, S * H, E), np.float64)  # (nb, K+1, C, SH, E)
        self.counts = np.zeros((n_blocks, K + 1, self.C), np.int64)              # (nb, K+1, C)

    def add(self, J, labels_at_source):
        """J (B, S, K+1, E, H) of the fast step; labels_at_source {labeling: (B, K+1), -1 none}."""
        B, S, n_delays = J.shape[:3]
        rows_of = J.reshape(B * S * n_delays, -1)                  # (B S (K+1), EH), a view
        state_delay = np.arange(S)[:, None] * n_delays + np.arange(n_delays)        # (S, K+1)
        base = (self.block[:, None, None] * S * n_delays + state_delay) * self.C    # (B, S, K+1)
        # row of (block, state, delay, class 0) in the window
        for name, offset in self.offsets.items():
            if name == "all" and self.groups == [slice(None)]:      # one stream a block: in place
                self.window[:-1].reshape(B, S, n_delays, self.C, -1)[:, :, :, 0] += \
                    J.reshape(B, S, n_delays, -1)           # slots before the text hold zeros
            else:
                self.add_labeling(rows_of, base, labels_at_source[name], offset)
            keep = labels_at_source[name] >= 0                          # (B, K+1)
            np.add.at(self.counts, (self.block[:, None].repeat(n_delays, 1)[keep],
                                    np.nonzero(keep)[1], offset + labels_at_source[name][keep]), 1)

    def add_labeling(self, rows_of, base, labels, offset):
        """One labeling's rows: (block, state, delay, offset + class) += G_{t,k} of each stream;
        slots in no class go to the last row, which is never read."""
        ids = labels[:, None, :]                                          # (B, 1, K+1)
        rows = np.where(ids >= 0, base + offset + ids, len(self.window) - 1).reshape(-1)
        rows = self.xp.asarray(rows)
        for group in self.groups:                      # no row twice in one group (but the last)
            self.window[rows[group]] += rows_of[group]

    def flush(self):
        """Move the float32 window into the float64 sums (once per window of steps)."""
        nb, n_delays, C, H, E = self.shape
        window = self.window[:-1].reshape(nb, self.S, n_delays, C, E, H)
        self.sums.reshape(nb, n_delays, C, self.S, H, E)[...] += window.transpose(0, 2, 3, 1, 5, 4)
        self.window[...] = 0.0


class Means(lstm_memory.StateGradientSums):
    """StateGradientSums' G_bar, G_bar_per_class and count, for weighted blocks."""

    def __init__(self, blocks: BlockSums, weights):
        self.labelings, self.offsets, self.H, self.xp = blocks.labelings, blocks.offsets, blocks.H, np
        self.states = blocks.states
        self.sums = np.tensordot(weights.astype(np.float64), blocks.sums, axes=1)  # (K+1, C, SH, E)
        self.counts = np.tensordot(weights, blocks.counts, axes=1).astype(np.int64)   # (K+1, C)

    def flush(self):
        """Nothing to move: the blocks' sums are float64 already."""


def draws(resamples: int, blocks: int, seed: int = 0):
    """(R, nb) how often each block is drawn in each of R resamples of nb blocks."""
    picks = np.random.default_rng(seed).integers(0, blocks, (resamples, blocks))    # (R, nb)
    return np.stack([np.bincount(row, minlength=blocks) for row in picks] or [[0] * blocks])[:resamples]


def leaves(result: dict) -> dict:
    """The statistics of one LM's results (dataclasses.asdict of ModelResults) as {path: float}
    (path: "table1 / c / nouns / sigma1", "spectrum / c / sigma1 / 3" for tau = 3),
    with Figure 1's shares sigma_1 / sum, top-n / sum and its fall sigma_1(0) / sigma_1(tau)."""
    flat = {}

    def walk(value, path):
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, (*path, str(key)))
        elif isinstance(value, list) and path[-1] in STATISTICS:
            for tau, number in enumerate(value):
                flat[SEP.join((*path, str(tau)))] = np.nan if number is None else float(number)
        elif path[-1] in STATISTICS:
            flat[SEP.join(path)] = np.nan if value is None else float(value)

    for section in SECTIONS:
        spectra = result.get(section, {})
        if section == "spectrum":
            spectra = {state: {**s, **derived_spectrum(s)} for state, s in spectra.items()}
        walk(spectra, (section,))
    for state, rows in result.get("table1", {}).items():          # how far the classes spread
        shares = [row["normalised"] for row in rows.values() if row.get("normalised") is not None]
        if shares:
            flat[SEP.join(("table1", state, "spread", "normalised"))] = max(shares) - min(shares)
    return flat


def derived_spectrum(spectrum: dict) -> dict:
    sigma1, total, top_n = (np.asarray(spectrum[k], float) for k in ("sigma1", "sum", "top_n"))
    return {"share1": list(sigma1 / total), "share_n": list(top_n / total),
            "fall": list(sigma1[0] / sigma1)}


def interval(values) -> list | None:
    """The percentile interval of a number's resampled values (R,); None when fewer than 95 % of
    the resamples define it (a class that most resamples lack)."""
    values = np.asarray(values, float)
    if np.isnan(values).mean() > 1 - LEVEL:
        return None
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def intervals(point: dict, replicates: list) -> dict:
    """{path: [low, high]} for every statistic of ``point`` (leaves), from the resamples'
    leaves."""
    return {path: interval([r.get(path, np.nan) for r in replicates]) for path in point}


def difference(point_a, point_b, reps_a, reps_b, path_a, path_b=None):
    """[a - b, low, high] of a difference of two statistics over the same resamples."""
    path_b = path_b or path_a
    values = [ra.get(path_a, np.nan) - rb.get(path_b, np.nan) for ra, rb in zip(reps_a, reps_b)]
    return [point_a[path_a] - point_b[path_b], *(interval(values) or [None, None])]


def within_model(point: dict, replicates: list, states, properties) -> dict:
    """The differences an order claim needs, in one LM: sigma_1 of every two classes (Table 1,
    whole and inside each frequency band), of every band of a class against its first band, m
    and cos of every two properties at each delay, and the growth over the delay (tau minus 0)
    of sigma_1 / sum, the top-n share and each property's m."""
    def diff(path_a, path_b):
        return difference(point, point, replicates, replicates, path_a, path_b)

    out = {}
    for state in states:
        rows = [p.split(SEP)[2] for p in point if p.startswith(f"table1{SEP}{state}{SEP}")
                and p.endswith(f"{SEP}sigma1")]
        for a, b in itertools.combinations(rows, 2):
            out[SEP.join(("table1", state, f"{a} - {b}", "sigma1"))] = diff(
                SEP.join(("table1", state, a, "sigma1")), SEP.join(("table1", state, b, "sigma1")))
        cells = [p.split(SEP)[2] for p in point if p.startswith(f"table1_bands{SEP}{state}{SEP}")
                 and p.endswith(f"{SEP}sigma1")]
        for a, b in itertools.combinations(cells, 2):
            (class_a, band_a), (class_b, band_b) = a.split(" | ", 1), b.split(" | ", 1)
            if band_a == band_b:
                name = f"{class_a} - {class_b} | {band_a}"
            elif class_a == class_b and a == next(c for c in cells if c.startswith(f"{class_a} | ")):
                name = f"{class_a} | {band_b} - {band_a}"                   # later band - first
                a, b = b, a
            else:
                continue
            out[SEP.join(("table1_bands", state, name, "sigma1"))] = diff(
                SEP.join(("table1_bands", state, a, "sigma1")),
                SEP.join(("table1_bands", state, b, "sigma1")))
        for path in [x for x in point if x.split(SEP)[:3] in (["spectrum", state, "share1"],
                                                              ["spectrum", state, "share_n"])
                     or x.split(SEP)[0] == "figure2" and x.split(SEP)[1] == state
                     and x.split(SEP)[3] == "m"]:
            *head, tau = path.split(SEP)
            if tau != "0":
                out[SEP.join((*head, f"{tau} - 0"))] = diff(path, SEP.join((*head, "0")))
        for p, q in itertools.combinations(properties, 2):
            for path in [x for x in point if x.split(SEP)[1:3] == [state, p]
                         and x.split(SEP)[0] in ("figure2", "figure2_class")
                         and x.split(SEP)[3] in ("m", "cos_Hn")]:
                section, _, _, measure, tau = path.split(SEP)
                out[SEP.join((section, state, f"{p} - {q}", measure, tau))] = diff(
                    path, SEP.join((section, state, q, measure, tau)))
    return out


def attach(results, replicates, states, properties, same_text) -> dict:
    """Intervals into each result (``result.intervals``) and the differences: per LM
    (within_model), and of each other LM minus the first where they read the same text
    (``same_text``[i]) and have the same state size (or were whitened)."""
    if not all(replicates):                                             # --bootstrap 0
        return {}
    points = [leaves(dataclasses.asdict(result)) for result in results]
    for result, point, reps in zip(results, points, replicates):
        result.intervals = intervals(point, reps)
    differences = {result.checkpoint: within_model(point, reps, states, properties)
                   for result, point, reps in zip(results, points, replicates)}
    first, first_point, first_reps = results[0], points[0], replicates[0]
    for result, point, reps, same in zip(results[1:], points[1:], replicates[1:], same_text[1:]):
        if same and (result.hidden_size == first.hidden_size or result.whitened):
            differences[f"{result.checkpoint} - {first.checkpoint}"] = {
                path: difference(point, first_point, reps, first_reps, path)
                for path in point if path in first_point}
    return differences


def table2_intervals(rows: dict, datasets: dict, resamples: int, seed: int = 0) -> None:
    """Table 2's intervals, into its rows: each accuracy's Wilson interval (scipy's binomtest, the
    held-out words as Bernoulli trials), and for every other LM the paired bootstrap interval of
    its accuracy minus the first LM's, over the same held-out words (when both have them). The
    held-out words' outcomes ("correct"), indices ("held_out") and ids are dropped from the rows;
    "majority" is the share of the commonest class among the held-out words. ``resamples`` 0:
    Wilson's intervals only.
    ``datasets``: {row: {LM: (word ids, labels)}}, the words each LM was fitted on."""
    from scipy.stats import binomtest

    rng = np.random.default_rng(seed)
    for task, row in rows.items():
        for name, (ids, labels) in datasets[task].items():
            held_out = row[name].pop("held_out")
            row[name]["words_held_out"] = np.asarray(ids)[held_out].tolist()
            if labels is not None:                         # the accuracy of always the commonest
                _, counts = np.unique(np.asarray(labels)[held_out], return_counts=True)
                row[name]["majority"] = float(counts.max() / counts.sum())
        names = list(row)
        for name in names:
            for protocol, correct in row[name]["correct"].items():
                test = binomtest(int(np.sum(correct)), len(correct))
                row[name][f"{protocol}_ci"] = list(test.proportion_ci(LEVEL, "wilson"))
        first = row[names[0]]
        words = len(first["correct"]["honest"])
        picks = rng.integers(0, words, (resamples, words))                   # (R, held-out words)
        for name in names[1:] if resamples else ():
            other = row[name]
            if other["words_held_out"] != first["words_held_out"]:
                continue
            for protocol in ("paper", "honest"):
                a, b = (np.asarray(x["correct"][protocol], float) for x in (other, first))
                diffs = a[picks].mean(axis=1) - b[picks].mean(axis=1)
                other[f"{protocol}_minus_{names[0]}"] = [float(a.mean() - b.mean()),
                                                         *(interval(diffs) or [None, None])]
        for name in names:
            row[name].pop("correct")
            row[name].pop("words_held_out")
