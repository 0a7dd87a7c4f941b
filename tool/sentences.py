"""One sentence's memory: G_{t,s} = dstate_t/dx_s for every word t of a sentence and every earlier
word s, from the cell's fast tangent step (proven equal to the plain one), as a lower-triangular
picture.

``analyze.py --sentence TEXT`` (or ``--sentences FILE``, one a line): each LM reads the sentence as
training text starts one, from the zero state after ``<eos>``; the picture's cell (t, s) is
sigma_1(G_{t,s}), how strongly word s can still move the state at t, and with ``--property NAME``
a second panel the relative memory m = |G_{t,s} d| / sigma_1 of the property's direction d (eq. 2,
5-6). One sentence is an anecdote; the averages of the paper's outputs are the evidence.
"""
from __future__ import annotations

import csv
import json
import os
import sys

import numpy as np

import corpus
import lstm_memory
from tool.analysis import AnalysisError
from tool.files import atomic_write
from tool.outputs import json_safe
from tool.own_text import read_text

MAX_WORDS = 40          # the picture stays readable up to here


def read_sentences(texts, path) -> list:
    """The sentences of --sentence and --sentences FILE, each a list of lower-cased words;
    an empty one or one longer than MAX_WORDS is refused before any work."""
    lines = list(texts) + (read_text(path, "sentences, one a line") if path else [])
    sentences = []
    for number, text in enumerate(lines, 1):
        words = text.lower().split()
        where = f"sentence {number}" + (f" ({path})" if number > len(texts) else "")
        if not words:
            raise AnalysisError(f"{where} is empty: give the words of a sentence")
        if len(words) > MAX_WORDS:
            raise AnalysisError(f"{where} has {len(words)} words; at most {MAX_WORDS} fit a picture")
        sentences.append(words)
    return sentences


def sentence_gradients(params, ids, eos_id, cell=lstm_memory.LSTM):
    """G[t, s] = dc_t/dx_s and dh_t/dx_s (the cell's states) for the words t of a sentence and
    every s <= t, read from the zero state after <eos> (as training text starts a sentence).

    Args: params, the LM's arrays (NumPy); ids (n,) word ids; eos_id, the id of <eos>; cell, of
    cells.CELLS.   Returns: {"c": (n, n, H, E), "h": (n, n, H, E)} (h only for one-state
    cells), zero where s > t.
    """
    W_x, W_h, b, emb = params["W_x"], params["W_h"], params["b"], params["embedding"]
    n, H, E, S = len(ids), W_h.shape[1], W_x.shape[1], len(cell.states)
    h = c = np.zeros((1, H), dtype=W_h.dtype)
    h, c, _ = cell.step_forward(emb[[eos_id]], h, c, W_x, W_h, b)          # the <eos> before
    J = np.zeros((1, S, n, E, H), dtype=W_h.dtype)                # delays 0..n-1, one stream
    J_next = np.empty_like(J)
    G = {state: np.zeros((n, n, H, E)) for state in cell.states}
    for t, word in enumerate(ids):
        h, c, cache = cell.step_forward(emb[[word]], h, c, W_x, W_h, b)
        J, J_next = cell.tangent_step_fast_in_place(J, cache, W_x, W_h, out=J_next), J
        for i, state in enumerate(cell.states):
            for s in range(t + 1):                                # delay k = t - s
                G[state][t, s] = J[0, i, t - s].T
    return G


def memory_maps(G, d=None):
    """sigma_1(G[t, s]) and, for a unit direction d, m = |G[t, s] d| / sigma_1 (eq. 5-6):
    (n, n) each, NaN above the diagonal (s > t)."""
    n = G.shape[0]
    below = np.tril(np.ones((n, n), dtype=bool))
    sigma1 = np.where(below, lstm_memory.singular_values(G)[..., 0], np.nan)
    if d is None:
        return sigma1, None
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(below, np.linalg.norm(G @ d, axis=-1) / sigma1, np.nan)
    return sigma1, m


def analyse_sentences(args, sentences, models, states, property_vector):
    """Every sentence (``read_sentences``) through every LM: the matrices, one picture per
    sentence, the CSV and results.json. ``property_vector(model, name)`` gives eq. 2's unit d of
    the first --property for an LM."""
    prop = next(iter(args.property), None)
    report = []
    for number, words in enumerate(sentences, 1):
        entry = {"words": words, "lms": {}}
        for model in models:
            index = model.data.word_to_id
            ids = [index.get(w, index[corpus.UNK]) for w in words]
            params = {k: v.astype(np.float64) for k, v in model.params.items()}
            G = sentence_gradients(params, ids, index.get(corpus.EOS, index[corpus.UNK]), model.cell)
            d = property_vector(model, prop) if prop else None
            maps = {state: memory_maps(G[state], d) for state in states}
            entry["lms"][model.name] = {
                "ids": ids, "unknown": [w not in index for w in words],
                **{f"sigma1_{s}": maps[s][0].tolist() for s in states},
                **({f"m_{s}": maps[s][1].tolist() for s in states} if prop else {})}
        report.append(entry)
        stem = os.path.join(args.out_dir, f"sentence_{number}")
        plot_sentence(stem, words, entry, states, prop)
        write_sentence_csv(stem, words, entry, states, prop)
    atomic_write(os.path.join(args.out_dir, "results.json"), lambda f: json.dump(
        json_safe({"settings": vars(args), "property": prop, "sentences": report}), f, indent=1,
        allow_nan=False), "w")
    print(f"wrote {len(sentences)} sentence pictures and results.json to {args.out_dir}",
          file=sys.stderr)
    return report


def shown(words, unknown):
    """Tick labels: the words, an unknown one marked with * (the LM read <unk>)."""
    return [w + ("*" if u else "") for w, u in zip(words, unknown)]


def plot_sentence(stem, words, entry, states, prop):
    """The picture: per LM and state a lower-triangular heat map of sigma_1(G_{t,s}) (rows t,
    columns s), and with a property a second of m; saved as stem.png and stem.pdf."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(name, state) for name in entry["lms"] for state in states]
    columns = ["sigma1"] + (["m"] if prop else [])
    n = len(words)
    size = 3.5 + 0.2 * n
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(size * len(columns), size * len(rows)),
                             squeeze=False, layout="constrained")
    for ax_row, (name, state) in zip(axes, rows):
        lm = entry["lms"][name]
        labels = shown(words, lm["unknown"])
        for ax, column in zip(ax_row, columns):
            values = np.array(lm[f"{column}_{state}"], dtype=float)
            image = ax.imshow(values, cmap="viridis", vmin=0 if column == "m" else None,
                              vmax=1 if column == "m" else None)
            ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
            ax.set_yticks(range(n), labels, fontsize=7)
            ax.set_xlabel("source word s")
            ax.set_ylabel("word read at t")
            what = (f"$\\sigma_1(\\partial {state}_t/\\partial x_s)$: how strongly word s can "
                    "still move the state" if column == "sigma1" else
                    f"m = $|G d| / \\sigma_1$ of {prop}: how much of the property is kept")
            ax.set_title(f"{name}, state {state}\n{what}", fontsize=8)
            fig.colorbar(image, ax=ax, shrink=0.8)
    if any(any(entry["lms"][name]["unknown"]) for name in entry["lms"]):
        fig.supxlabel("* not in the LM's vocabulary: it read <unk>", fontsize=8)
    for ext in ("png", "pdf"):
        atomic_write(f"{stem}.{ext}", lambda f: fig.savefig(f, format=ext, dpi=150,
                                                            bbox_inches="tight"))
    plt.close(fig)


def write_sentence_csv(stem, words, entry, states, prop):
    """stem.csv: one line per LM, state, word t and source s <= t, with sigma_1 (and m)."""
    rows = [["checkpoint", "state", "t", "word_t", "s", "word_s", "sigma1", *(["m"] if prop else [])]]
    for name, lm in entry["lms"].items():
        labels = shown(words, lm["unknown"])
        for state in states:
            for t in range(len(words)):
                for s in range(t + 1):
                    rows.append([name, state, t, labels[t], s, labels[s],
                                 f"{lm[f'sigma1_{state}'][t][s]:.6g}",
                                 *([f"{lm[f'm_{state}'][t][s]:.6g}"] if prop else [])])
    atomic_write(f"{stem}.csv", lambda f: csv.writer(f).writerows(rows), "w")
