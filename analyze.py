"""What does the LSTM state remember of the words it read, and for how long? The paper's results.

    python analyze.py                                  # checkpoints/joint.npz and checkpoints/cbow.npz
    python analyze.py --checkpoints a.npz b.npz --max-tokens 20000 --out-dir /tmp/results
    python analyze.py --checkpoints ud.npz --classes my_classes.txt --property Tense=Past:Tense=Pres

Reads the evaluation text with each LM while carrying forward-mode state gradients for every delay
0..K (lstm_memory.sweep_state_gradients), then writes to --out-dir:

  figure1.png/.pdf   sigma_1 and sum of singular values of Gbar_tau against delay tau (paper Fig. 1)
  table1.md/.csv     sigma_1 at tau = 0 per part of speech, normalised in brackets (Table 1)
  table2.md/.csv     accuracy of logistic regression predicting POS classes from embeddings (Table 2)
  figure2.png/.pdf   relative memory m and cos(d, H_n) for each property, e.g. sg-pl (Figure 2)
  response.png/.pdf  |Gbar_tau (mean_a - mean_b)| for each property: Figure 2 before normalising d
  frequency.png/.pdf sigma_1 against delay for words of a few frequency bins
  results.json       every number behind them

With --state both, the figures show the cell state c and the hidden state h side by side. The
classes (Table 1) and properties (Figure 2) come from the corpus kind's built-in scheme
(corpus.SCHEMES) or from --classes FILE.
"""
from __future__ import annotations

import argparse
import collections
import csv
import itertools
import json
import os
import sys
import time
import warnings

import numpy as np
from tqdm import tqdm

import corpus as corpora
import lstm_memory as lm

POS_TASKS = [  # Table 2 rows over POS classes, kept when the scheme has all of their classes
    ("N-V-Adj-Adv-Pro", ("nouns", "verbs", "adjectives", "adverbs", "pronouns")),
    ("N-V", ("nouns", "verbs")),
    ("N-Adj", ("nouns", "adjectives")),
    ("V-Adv", ("verbs", "adverbs")),
]
MIN_WORD_COUNT = 5   # word types rarer than this in training are in no class (CBOW's min count)
STATES = {"c": ("c",), "h": ("h",), "both": ("c", "h")}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoints", nargs="+",
                   default=["checkpoints/joint.npz", "checkpoints/cbow.npz"],
                   help="LM checkpoints written by train.py (one colour/panel each; they may differ "
                        "in --hidden-size: add --whiten to compare their singular values)")
    p.add_argument("--split", default="valid", choices=corpora.SPLITS, help="evaluation text")
    p.add_argument("--max-delay", type=int, default=30, help="K: delays 0..K")
    p.add_argument("--state", default="c", choices=tuple(STATES),
                   help="c: LSTM cell state (the paper's); h: hidden state (its future work); "
                        "both: c and h side by side")
    p.add_argument("--top-n", type=int, default=5, help="n of cos(d, H_n) in Figure 2")
    p.add_argument("--average", default="all", choices=("all", "class"),
                   help="Figure 2's Gbar_tau: over all positions (eq. 1, the paper's) or over the "
                        "positions whose word at t - tau is of the property's two classes "
                        "(results.json has both)")
    p.add_argument("--classes", default=None, metavar="FILE",
                   help="class file (format: README, 'Classes of your own') instead of the "
                        "corpus kind's built-in classes")
    p.add_argument("--property", action="append", default=[], metavar="A:B",
                   help="one more property d_{A-B} for Figure 2: two classes of the scheme or "
                        "CoNLL-U features, e.g. Tense=Past:Tense=Pres (repeatable)")
    p.add_argument("--frequency-bins", type=int, nargs="+", default=[100, 1000, 5000],
                   metavar="RANK", help="frequency-rank edges of the word bins of frequency.png")
    p.add_argument("--max-tokens", type=int, default=None, help="analyse the first N tokens only")
    p.add_argument("--batch-size", type=int, default=20, help="parallel streams of the text")
    p.add_argument("--whiten", action="store_true",
                   help="whiten the embedding space (Cholesky factor of its covariance) so that "
                        "singular values of different LMs share one scale")
    p.add_argument("--out-dir", default="results", help="where figures, tables and JSON go")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    p.add_argument("--workers", type=int, default=os.cpu_count(),
                   help="CPU threads for the sweep, each over its share of the streams")
    p.add_argument("--classifier-seeds", type=int, default=1,
                   help="initialisation seeds in Table 2's grid search")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.max_delay < 0:
        p.error("--max-delay must be at least 0")
    if args.top_n < 1:
        p.error("--top-n must be at least 1")
    if args.max_tokens is not None and args.max_tokens < 1:
        p.error("--max-tokens must be at least 1")
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if any(b < 1 for b in args.frequency_bins) or args.frequency_bins != sorted(set(args.frequency_bins)):
        p.error("--frequency-bins must be increasing ranks of at least 1")
    for prop in args.property:
        if prop.count(":") != 1 or not all(prop.split(":")):
            p.error(f"--property {prop}: write two classes or features as A:B")
    return args


class AnalysisError(Exception):
    """Input the analysis cannot use, with one sentence saying why."""


# ----------------------------------------------------------------------------------------------
# Inputs: checkpoints, the corpus they were trained on, class schemes, word classes
# ----------------------------------------------------------------------------------------------

def load_model(path, corpus_cache):
    """(params, meta, corpus) for a checkpoint, with the corpus it was trained on.

    ``corpus_cache`` maps corpus settings to the Corpus, so that LMs of one corpus share one
    reading of it.
    """
    params, vocab, meta, _ = lm.load_checkpoint(path)
    settings = meta.get("settings")
    if not settings:
        raise lm.CheckpointError(f"{path} has no training settings: was it written by train.py?")
    corpus_settings = corpora.corpus_settings(settings)
    key = json.dumps(corpus_settings, sort_keys=True)
    if key not in corpus_cache:
        corpus_cache[key] = corpora.load_corpus(**corpus_settings)
    data = corpus_cache[key]
    lm.check_vocab(path, vocab, data.vocab)
    return params, meta, data


def load_scheme(args, data):
    """The class scheme for ``data``: --classes FILE or the built-in one, plus --property pairs."""
    if args.classes:
        scheme = corpora.read_scheme(args.classes)
        corpora.check_tags_exist(scheme, data.tags["train"])
    elif data.scheme is None:
        raise AnalysisError(f"no built-in classes fit the tags of {data.name}: describe them in a "
                            f"class file and pass --classes FILE")
    else:
        scheme = corpora.builtin_scheme(data.scheme)
    for prop in args.property:
        scheme.properties[prop] = tuple(corpora.property_side(scheme, side, f"--property {prop}")
                                        for side in prop.split(":"))
    return scheme


def word_classes(data, scheme, min_count=MIN_WORD_COUNT):
    """Each vocabulary word's classes for Table 2 and eq. (2), from its majority tag in the training
    split (with that tag's majority features); words seen fewer than ``min_count`` times there are
    in no class.

    Returns {"tags", "noun_tags", "pos", and one key per property}: one list over the vocabulary
    each (a tag or class name, or None). A word that fits both sides of a property is in the first.
    """
    analyses = corpora.majority_analyses(data, "train", min_count=min_count)
    names = list(scheme.pos)
    index = [-1 if a is None else scheme.pos_index(*a) for a in analyses]
    pos = [names[i] if i >= 0 else None for i in index]
    classes = {"tags": [None if a is None else a[0] for a in analyses], "pos": pos,
               "noun_tags": [a[0] if p == "nouns" else None for a, p in zip(analyses, pos)]}
    for prop, sides in scheme.properties.items():
        classes[prop] = [None if a is None else next((c.name for c in sides if c.matches(*a)), None)
                         for a in analyses]
    return classes


def usable_properties(scheme, word_classes_of_models, asked=()):
    """The properties whose two sides have words in every LM's vocabulary. An empty side of a
    user's class file or of a property ``asked`` for (--property) is an error naming its line; a
    built-in property without words (a corpus with no Number features, say) is left out with a
    note."""
    usable = []
    for prop, sides in scheme.properties.items():
        empty = [c for c in sides
                 if any(c.name not in classes[prop] for classes in word_classes_of_models)]
        if not empty:
            usable.append(prop)
        elif scheme.user_file or prop in asked:
            raise AnalysisError(f"{empty[0].where}: class {empty[0].name!r} of property {prop!r} has "
                                f"no word seen {MIN_WORD_COUNT} times in training")
        else:
            print(f"note: property {prop} left out: class {empty[0].name} has no word in this "
                  f"corpus", file=sys.stderr)
    return usable


def frequency_bins(vocab, edges):
    """Names and (V,) bin ids of the frequency-rank bins (the vocabulary is ranked by training
    frequency); <unk> and <eos> are in no bin (-1)."""
    n_words = len(vocab) - 1                                    # <unk> is last
    edges = [0] + [e for e in edges if e < n_words] + [n_words]
    names = [f"rank {lo + 1}-{hi}" for lo, hi in zip(edges, edges[1:])]
    bins = np.searchsorted(edges, np.arange(len(vocab)), side="right") - 1
    bins[[i for i, w in enumerate(vocab) if w in (corpora.UNK, corpora.EOS)]] = -1
    return names, bins


# ----------------------------------------------------------------------------------------------
# The sweep and the singular values
# ----------------------------------------------------------------------------------------------

def stream_labels(data, scheme, properties, args):
    """The evaluation text as streams (B, N) of word ids, and the class of every position for the
    sweep's averages: labelings "pos" (Table 1's classes), "freq" (frequency bins) and one per
    property (the tokens of either of its classes); -1 = in no class."""
    ids = data.ids[args.split][:args.max_tokens]
    n_per_stream = len(ids) // args.batch_size
    if n_per_stream <= args.max_delay:
        raise AnalysisError(f"--max-delay {args.max_delay} is larger than the text: the {args.split} "
                            f"split gives {n_per_stream} words per stream ({args.batch_size} streams)")
    tags, feats = data.tags[args.split][:len(ids)], data.feats[args.split][:len(ids)]   # (N,)
    pos = scheme.pos_labels(tags, feats)                                      # (N,)
    empty = [c for i, c in enumerate(scheme.pos.values()) if not (pos == i).any()]
    if empty:
        raise AnalysisError(f"{empty[0].where}: no word of class {empty[0].name} in the analysed text")
    bin_names, bins = frequency_bins(data.vocab, args.frequency_bins)
    streams = corpora.batchify(ids, args.batch_size)                         # (B, N)
    labels = {"pos": corpora.batchify(pos, args.batch_size), "freq": bins[streams]}
    names = {"pos": list(scheme.pos), "freq": bin_names}
    for prop in properties:
        side = corpora.token_labels(scheme.properties[prop], tags, feats)     # (N,) 0, 1 or -1
        labels[prop] = corpora.batchify(np.where(side >= 0, 0, -1), args.batch_size)
        names[prop] = [prop]
    return streams, labels, names


def analyse_model(model, labelled_text, args, xp):
    """Run the forward-mode sweep for one LM over ``stream_labels``' streams; returns the
    per-delay and per-class sums and the timing."""
    streams, labels, names = labelled_text
    on_device = {k: xp.asarray(v, dtype=np.float32) for k, v in model["params"].items()}
    bar = tqdm(total=streams.size, unit="pos", desc=model["name"], disable=args.no_progress)
    clock = time.perf_counter()
    sums = lm.sweep_state_gradients(on_device, streams, labels, names, args.max_delay,
                                    progress=bar.update, workers=args.workers)
    lm.synchronize(xp)
    seconds = time.perf_counter() - clock
    bar.close()
    return sums, {"positions": int(streams.size), "seconds": seconds}


def spectrum(G_bar, n):
    """sigma_1, sum of sigma, sum of the top n sigma for each delay: G_bar (K+1, H, E)."""
    S = lm.singular_values(G_bar)                                   # (K+1, min(H, E))
    return {"sigma1": S[:, 0].tolist(), "sum": S.sum(1).tolist(), f"top{n}": S[:, :n].sum(1).tolist()}


def memory_curves(G_bar, d, length, n):
    """r (eq. 5), m (eq. 6) and cos(d, H_n) (eq. 3-4) of a unit property vector d at every delay,
    and r_abs = r * length = |Gbar (mean_a - mean_b)| for the difference before eq. (2) scales it
    to unit length: how far the state moves, tau steps later, when a word of class b is swapped
    for one of class a. G_bar (K+1, H, E); None at delays without positions (a NaN mean)."""
    curves = {"r": [], "r_abs": [], "m": [], f"cos_H{n}": []}
    for G in G_bar:
        defined = not np.isnan(G).any()
        r = float(np.linalg.norm(G @ d)) if defined else None
        curves["r"].append(r)
        curves["r_abs"].append(length * r if defined else None)
        curves["m"].append(lm.relative_memory(G, d) if defined else None)
        curves[f"cos_H{n}"].append(lm.subspace_cosine(G, d, n) if defined else None)
    return curves


def model_results(model, scheme, properties, sums, args):
    """Figure 1, Table 1, Figure 2 and frequency-bin numbers for one LM, for each state of
    --state (optionally in the whitened embedding space)."""
    embeddings = model["params"]["embedding"].astype(np.float64)      # (V, E)
    D = lm.whitening(embeddings) if args.whiten else None

    def in_space(G):
        return G if D is None else lm.whiten_gradient(G, D)

    settings, train = model["meta"]["settings"], model["meta"]["train"]
    result = {"checkpoint": model["name"], "embeddings": settings["embeddings"],
              "hidden_size": int(model["params"]["W_h"].shape[1]),
              "valid_ppl": train.get("best_valid_ppl"), "test_ppl": train.get("test_ppl"),
              "whitened": bool(args.whiten), "table1": {}, "figure2": {},
              "frequency": {}}
    vectors = {}
    for prop in properties:
        a, b = scheme.properties[prop]
        words_a, words_b = (words_of(model["classes"], prop, c.name) for c in (a, b))
        difference = embeddings[words_a].mean(0) - embeddings[words_b].mean(0)     # (E,)
        d = lm.property_vector(embeddings, words_a, words_b)                        # eq. (2)
        if D is not None:
            d, difference = lm.whiten_vector(d, D), np.linalg.solve(D, difference)
        vectors[prop] = (d, float(np.linalg.norm(difference)), [len(words_a), len(words_b)])
    result["spectrum"] = {s: spectrum(in_space(sums.mean("all", s)[0]), args.top_n) for s in "ch"}
    for state in STATES[args.state]:
        pos_means = in_space(sums.mean("pos", state)[:, 0])          # (classes, H, E) at tau = 0
        sigma1 = lm.singular_values(pos_means)[:, 0]
        result["table1"][state] = {
            c: {"sigma1": float(s), "normalised": float(s / sigma1.sum()), "count": int(n)}
            for c, s, n in zip(scheme.pos, sigma1, sums.count("pos")[:, 0])}
        G_all = in_space(sums.mean("all", state)[0])                  # (K+1, H, E)
        result["figure2"][state] = {}
        for prop, (d, length, words) in vectors.items():
            entry = {"words": words, "positions": int(sums.count(prop)[0, 0]),
                     "difference_norm": length}
            for suffix, G_bar in (("", G_all), ("_class", in_space(sums.mean(prop, state)[0]))):
                entry.update({key + suffix: values
                              for key, values in memory_curves(G_bar, d, length, args.top_n).items()})
            result["figure2"][state][prop] = entry
        bins = sums.mean("freq", state)                               # (bins, K+1, H, E)
        result["frequency"][state] = {
            name: {"sigma1": [None if np.isnan(G).any() else float(lm.singular_values(in_space(G))[0])
                              for G in per_delay], "count": int(n)}
            for name, per_delay, n in zip(sums.labelings["freq"], bins, sums.count("freq")[:, 0])}
    result["property_cosines"] = {f"{p} / {q}": float(vectors[p][0] @ vectors[q][0])
                                  for p, q in itertools.combinations(vectors, 2)}
    return result


def words_of(classes, key, value):
    return [i for i, c in enumerate(classes[key]) if c == value]


# ----------------------------------------------------------------------------------------------
# Table 2: linear separability of POS classes in embedding space (scikit-learn)
# ----------------------------------------------------------------------------------------------

def table2_tasks(scheme, properties):
    """Table 2's rows for a scheme: row -> (word_classes key, the classes it keeps; None: all)."""
    tasks = {"all": ("tags", None)}
    if "nouns" in scheme.pos:
        tasks["nouns"] = ("noun_tags", None)
    tasks.update({row: ("pos", keep) for row, keep in POS_TASKS if set(keep) <= set(scheme.pos)})
    tasks.update({prop: (prop, None) for prop in properties})
    return tasks


def task_dataset(classes, task_spec, min_words=10):
    """(word ids, labels) for one row of Table 2 (word types labelled by their majority tag).

    "all" keeps the tags that are the majority tag of at least ``min_words`` words.
    """
    key, keep = task_spec
    labels = classes[key]
    if keep is None and key == "tags":
        counts = collections.Counter(t for t in labels if t is not None)
        keep = {t for t, n in counts.items() if n >= min_words}
    ids = [i for i, label in enumerate(labels) if label is not None and (keep is None or label in keep)]
    return np.array(ids, dtype=int), np.array([labels[i] for i in ids])


def classifier_grid(seeds):
    """The paper's grid: L1/L2, strength, seed, class weights, one-vs-rest vs multinomial, solver.

    One-vs-rest is fitted with liblinear, multinomial with lbfgs (L2) or saga (L1); seeds only
    matter for the two stochastic solvers.
    """
    for l1_ratio, C, weight in itertools.product((0.0, 1.0), (0.1, 1.0, 10.0), (None, "balanced")):
        for scheme, solver in (("ovr", "liblinear"),
                               ("multinomial", "lbfgs" if l1_ratio == 0.0 else "saga")):
            for seed in range(1 if solver == "lbfgs" else seeds):
                yield dict(l1_ratio=l1_ratio, C=C, random_state=seed, class_weight=weight,
                           scheme=scheme, solver=solver)


def fit_and_score(setting, X_train, y_train, X_valid, y_valid):
    """Validation accuracy of one logistic regression of the grid."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    kwargs = {k: v for k, v in setting.items() if k != "scheme"}
    model = LogisticRegression(max_iter=100, tol=1e-3, **kwargs)
    if setting["scheme"] == "ovr" and len(set(y_train)) > 2:
        model = OneVsRestClassifier(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X_train, y_train).score(X_valid, y_valid)


def best_validation_accuracy(X, y, seeds=1, split_seed=0, jobs=-1):
    """Best validation accuracy over the grid; word types split 80/20, stratified by class,
    features standardised on the training part. Returns (accuracy, setting, (n_train, n_valid))."""
    from joblib import Parallel, delayed
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.2, stratify=y,
                                                          random_state=split_seed)
    scaler = StandardScaler().fit(X_train)
    X_train, X_valid = scaler.transform(X_train), scaler.transform(X_valid)
    grid = list(classifier_grid(seeds))
    scores = Parallel(n_jobs=jobs)(delayed(fit_and_score)(s, X_train, y_train, X_valid, y_valid)
                                   for s in grid)
    best = int(np.argmax(scores))                     # the first of equal scores
    return float(scores[best]), grid[best], (len(y_train), len(y_valid))


def table2(models, tasks, seeds, progress=True):
    """Rows of Table 2: {task: {model name: accuracy, ...}} on each LM's embeddings. A row without
    two classes of at least two words each is left out with a note."""
    rows = {}
    for task, spec in tqdm(tasks.items(), desc="Table 2", leave=False, disable=not progress):
        datasets = {name: task_dataset(model["classes"], spec) for name, model in models.items()}
        counts = [collections.Counter(labels) for _, labels in datasets.values()]
        too_small = [c for c in counts if len(c) < 2 or min(c.values()) < 2]
        if too_small:
            print(f"note: Table 2 row {task} left out: it needs two classes of at least two words "
                  f"each, and has {dict(too_small[0])}", file=sys.stderr)
            continue
        rows[task] = {}
        for name, (ids, labels) in datasets.items():
            accuracy, setting, sizes = best_validation_accuracy(
                models[name]["params"]["embedding"][ids], labels, seeds)
            rows[task][name] = {"accuracy": accuracy, "classes": int(len(set(labels))),
                                "words": [int(s) for s in sizes], "best": setting}
    return rows


# ----------------------------------------------------------------------------------------------
# Output: figures, tables, JSON
# ----------------------------------------------------------------------------------------------

def write_table(stem, header, rows):
    """The same table as Markdown (stem.md) and CSV (stem.csv)."""
    with open(stem + ".md", "w") as f:
        f.write("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n")
        for row in rows:
            f.write("| " + " | ".join(str(x) for x in row) + " |\n")
    with open(stem + ".csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def save_figure(fig, stem):
    for ext in ("png", "pdf"):
        fig.savefig(f"{stem}.{ext}", dpi=150, bbox_inches="tight")


def panels(n_rows, n_cols, width=5.5, height=4):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False,
                             layout="constrained")
    return plt, fig, axes


def model_label(r, sizes_differ):
    return f"{r['checkpoint']} (H={r['hidden_size']})" if sizes_differ else r["checkpoint"]


def plot_figure1(results, states, path):
    """sigma_1 (solid) and the sum of singular values (dashed) against delay; one panel per state,
    one colour per LM."""
    plt, fig, axes = panels(1, len(states), width=6.4)
    sizes_differ = len({r["hidden_size"] for r in results}) > 1
    for left, state in zip(axes[0], states):
        right = left.twinx()
        for colour, r in zip(itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"]), results):
            spec, label = r["spectrum"][state], model_label(r, sizes_differ)
            delays = np.arange(len(spec["sigma1"]))
            left.plot(delays, spec["sigma1"], "-", color=colour, label=f"{label}: $\\sigma_1$")
            right.plot(delays, spec["sum"], "--", color=colour, label=f"{label}: $\\sum\\sigma$")
        left.set_xlabel("delay $\\tau$")
        left.set_ylabel("largest singular value $\\sigma_1$ (solid)")
        right.set_ylabel("sum of singular values (dashed)")
        handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        left.legend(handles, [h.get_label() for h in handles], fontsize=8)
        whitened = " (whitened)" if results[0]["whitened"] else ""
        left.set_title(f"SVD of the average gradient $d{state}_t/dx_{{t-\\tau}}${whitened}", fontsize=10)
    fig.suptitle("Figure 1: memory against delay")
    save_figure(fig, path)
    plt.close(fig)


def plot_figure2(results, states, n, average, path):
    """Relative memory m (solid) and cos(d, H_n) (dotted) of each property against delay, with the
    spectrum's share of sigma_1 and of the top n in grey; rows: states, columns: LMs. ``average``
    'class': the curves of Gbar over the positions of each property's own words."""
    plt, fig, axes = panels(len(states), len(results))
    for row, state in zip(axes, states):
        for ax, r in zip(row, results):
            spec = r["spectrum"][state]
            delays = np.arange(len(spec["sigma1"]))
            total = np.array(spec["sum"])
            if average == "all":          # the spectrum's shares belong to the all-positions Gbar
                ax.plot(delays, np.array(spec["sigma1"]) / total, color="0.6", lw=1,
                        label="$\\sigma_1/\\sum\\sigma$")
                ax.plot(delays, np.array(spec[f"top{n}"]) / total, color="0.6", lw=1, ls="--",
                        label=f"$\\sum_{{i\\leq{n}}}\\sigma_i/\\sum\\sigma$")
            colours = itertools.cycle(("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"))
            suffix = "" if average == "all" else "_class"
            for colour, (prop, values) in zip(colours, r["figure2"][state].items()):
                curve = lambda key: np.array(values[key + suffix], dtype=float)  # noqa: E731
                ax.plot(delays, curve("m"), "-", color=colour, label=f"m, {prop}")
                ax.plot(delays, curve(f"cos_H{n}"), ":", color=colour, label=f"cos(d, $H_{n}$), {prop}")
            ax.set_xlabel("delay $\\tau$")
            ax.set_ylim(0, 1.02)
            cosines = ", ".join(f"cos({pair}) = {c:.2f}" for pair, c in r["property_cosines"].items())
            ax.set_title(f"{r['checkpoint']}, state {state}" + (f"\n{cosines}" if cosines else ""),
                         fontsize=9)
            ax.legend(fontsize=7)
    over = "all positions" if average == "all" else "the positions of each property's words"
    fig.suptitle(f"Figure 2: relative memory m and cos(d, $H_n$), $\\bar G_\\tau$ over {over}")
    save_figure(fig, path)
    plt.close(fig)


def plot_response(results, states, average, path):
    """r_abs = |Gbar_tau (mean_a - mean_b)| of each property against delay (log scale): how far the
    state moves when a word of class b is swapped for one of class a, tau steps back."""
    plt, fig, axes = panels(len(states), len(results))
    suffix = "" if average == "all" else "_class"
    for row, state in zip(axes, states):
        for ax, r in zip(row, results):
            for prop, values in r["figure2"][state].items():
                r_abs = np.array(values["r_abs" + suffix], dtype=float)
                ax.plot(np.arange(len(r_abs)), r_abs,
                        label=f"{prop} ($|\\mu_a - \\mu_b|$ = {values['difference_norm']:.2f})")
            ax.set_xlabel("delay $\\tau$")
            ax.set_ylabel("$|\\bar G_\\tau (\\mu_a - \\mu_b)|$")
            ax.set_yscale("log")
            ax.set_title(f"{r['checkpoint']}, state {state}", fontsize=9)
            ax.legend(fontsize=7)
    over = "all positions" if average == "all" else "the positions of each property's words"
    fig.suptitle(f"Response of the state to each property (eq. 5 before eq. 2's normalisation), "
                 f"over {over}", fontsize=10)
    save_figure(fig, path)
    plt.close(fig)


def plot_frequency(results, states, path):
    """sigma_1 of the average gradient over the words of each frequency bin, against delay."""
    plt, fig, axes = panels(len(states), len(results))
    for row, state in zip(axes, states):
        for ax, r in zip(row, results):
            for name, values in r["frequency"][state].items():
                sigma1 = np.array([np.nan if s is None else s for s in values["sigma1"]])
                ax.plot(np.arange(len(sigma1)), sigma1, label=f"{name} ({values['count']} tokens)")
            ax.set_xlabel("delay $\\tau$")
            ax.set_ylabel("$\\sigma_1$")
            ax.set_yscale("log")
            ax.set_title(f"{r['checkpoint']}, state {state}", fontsize=9)
            ax.legend(fontsize=7)
    fig.suptitle("$\\sigma_1$ of $\\bar G_\\tau$ per word-frequency bin (rank in the vocabulary)")
    save_figure(fig, path)
    plt.close(fig)


def write_outputs(results, t2, scheme, args, timing):
    os.makedirs(args.out_dir, exist_ok=True)
    out = lambda name: os.path.join(args.out_dir, name)  # noqa: E731
    states = STATES[args.state]
    plot_figure1(results, states, out("figure1"))
    plot_figure2(results, states, args.top_n, args.average, out("figure2"))
    plot_response(results, states, args.average, out("response"))
    plot_frequency(results, states, out("frequency"))
    columns = [(r, s) for r in results for s in states]
    write_table(out("table1"), ["class", *(r["checkpoint"] + (f" ({s})" if len(states) > 1 else "")
                                           for r, s in columns)],
                [[c, *(f"{r['table1'][s][c]['sigma1']:.3f} ({r['table1'][s][c]['normalised']:.2f})"
                       for r, s in columns)] for c in scheme.pos])
    names = [r["checkpoint"] for r in results]
    write_table(out("table2"), ["classes", *names],
                [[f"{task} ({next(iter(t2[task].values()))['classes']})",
                  *(f"{100 * t2[task][n]['accuracy']:.2f}" for n in names)] for task in t2])
    with open(out("results.json"), "w") as f:
        json.dump({"settings": vars(args), "classes": scheme.source, "models": results,
                   "table2": t2, "timing": timing}, f, indent=1)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        xp = lm.get_backend(args.device)
        corpus_cache, models, results, timing, schemes = {}, {}, [], {}, {}
        for path in args.checkpoints:           # every input checked before the long sweeps
            params, meta, data = load_model(path, corpus_cache)
            name = os.path.splitext(os.path.basename(path))[0]
            if name in models:
                raise AnalysisError(f"two checkpoints are named {name}: give them different names")
            if args.top_n > params["embedding"].shape[1]:
                raise AnalysisError(f"--top-n {args.top_n} is larger than the embedding size "
                                    f"{params['embedding'].shape[1]} of {path}")
            if id(data) not in schemes:
                schemes[id(data)] = load_scheme(args, data)
            models[name] = dict(name=name, path=path, params=params, meta=meta, data=data,
                                classes=word_classes(data, schemes[id(data)]))
        if len({s.source for s in schemes.values()}) > 1:
            raise AnalysisError("these LMs were trained on corpora with different classes "
                                f"({', '.join(sorted({s.source for s in schemes.values()}))}): "
                                "analyse them in separate runs")
        scheme = next(iter(schemes.values()))   # one scheme: the same classes for every LM
        properties = usable_properties(scheme, [m["classes"] for m in models.values()], args.property)
        texts = {key: stream_labels(m["data"], scheme, properties, args)
                 for key, m in {id(m["data"]): m for m in models.values()}.items()}
        for name, m in models.items():
            sums, timing[name] = analyse_model(m, texts[id(m["data"])], args, xp)
            results.append(model_results(m, scheme, properties, sums, args))
            print(f"{name}: {timing[name]['positions']} positions in {timing[name]['seconds']:.0f} s",
                  file=sys.stderr)
        t2 = table2(models, table2_tasks(scheme, properties), args.classifier_seeds,
                    progress=not args.no_progress)
        write_outputs(results, t2, scheme, args, timing)
    except (lm.CheckpointError, corpora.CorpusError, AnalysisError, RuntimeError, ValueError,
            np.linalg.LinAlgError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote figures, tables and results.json to {args.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
