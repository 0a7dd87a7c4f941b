"""What does the LSTM state remember of the words it read, and for how long? The paper's results.

    python analyze.py                                  # checkpoints/joint.npz and checkpoints/cbow.npz
    python analyze.py --checkpoints a.npz b.npz --max-tokens 20000 --out-dir /tmp/results

Reads the evaluation text with each LM while carrying forward-mode state gradients for every delay
0..K (lstm_memory.sweep_state_gradients), then writes to --out-dir:

  figure1.png/.pdf   sigma_1 and sum of singular values of Gbar_tau against delay tau (paper Fig. 1)
  table1.md/.csv     sigma_1 at tau = 0 per part of speech, normalised in brackets (Table 1)
  table2.md/.csv     accuracy of logistic regression predicting POS classes from embeddings (Table 2)
  figure2.png/.pdf   relative memory m and cos(d, H_n) for sg-pl and common-proper (Figure 2)
  results.json       every number behind them
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

PROPERTIES = {  # property -> (word_classes key, class a, class b): d_{a-b} of eq. (2)
    "sg-pl": ("number", "sg", "pl"),
    "common-proper": ("type", "common", "proper"),
}
TABLE2_TASKS = [  # row -> (word_classes key, the classes of that key it uses; None: all of them)
    ("all", ("tags", None)),
    ("nouns", ("noun_tags", None)),
    ("N-V-Adj-Adv-Pro", ("coarse", ("nouns", "verbs", "adjectives", "adverbs", "pronouns"))),
    ("N-V", ("coarse", ("nouns", "verbs"))),
    ("N-Adj", ("coarse", ("nouns", "adjectives"))),
    ("V-Adv", ("coarse", ("verbs", "adverbs"))),
    ("sg-pl", ("number", None)),
    ("common-proper", ("type", None)),
]
MIN_WORD_COUNT = 5   # word types rarer than this in training are in no class (CBOW's min count)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoints", nargs="+",
                   default=["checkpoints/joint.npz", "checkpoints/cbow.npz"],
                   help="LM checkpoints written by train.py (one column/colour each)")
    p.add_argument("--split", default="valid", choices=corpora.SPLITS, help="evaluation text")
    p.add_argument("--max-delay", type=int, default=30, help="K: delays 0..K")
    p.add_argument("--state", default="c", choices=("c", "h"),
                   help="c: LSTM cell state (the paper's); h: hidden state (its future work)")
    p.add_argument("--top-n", type=int, default=5, help="n of cos(d, H_n) in Figure 2")
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
    return args


class AnalysisError(Exception):
    """Input the analysis cannot use, with one sentence saying why."""


# ----------------------------------------------------------------------------------------------
# Inputs: checkpoints, the corpus they were trained on, word classes
# ----------------------------------------------------------------------------------------------

def load_model(path, corpus_cache):
    """(params, meta, corpus, word classes) for a checkpoint, with the corpus it was trained on.

    ``corpus_cache`` maps corpus settings to (Corpus, word classes), so that LMs of one corpus
    share one reading of it.
    """
    params, vocab, meta, _ = lm.load_checkpoint(path)
    settings = meta.get("settings")
    if not settings:
        raise lm.CheckpointError(f"{path} has no training settings: was it written by train.py?")
    key = (settings["corpus"], settings["vocab_size"], settings["max_train_tokens"], settings["seed"])
    if key not in corpus_cache:
        data = corpora.load_corpus(settings["corpus"], settings["vocab_size"],
                                   settings["max_train_tokens"], seed=settings["seed"])
        corpus_cache[key] = (data, word_classes(data))
    data, classes = corpus_cache[key]
    lm.check_vocab(path, vocab, data.vocab)
    return params, meta, data, classes


def position_labels(data, split, n_tokens):
    """Coarse POS class id of every token of ``split`` (Table 1), -1 = none: (n_tokens,)."""
    return np.array([-1 if (c := corpora.coarse_class(t, data.name)) is None else c
                     for t in data.tags[split][:n_tokens]])


def word_classes(data, min_count=MIN_WORD_COUNT):
    """Each vocabulary word's classes for Table 2 and eq. (2), from its majority tag in the
    training split; words seen fewer than ``min_count`` times there are in no class.

    Returns {"tags", "noun_tags", "coarse", "number", "type"}: one list over the vocabulary each.
    """
    tags = corpora.majority_tags(data, "train", min_count=min_count)
    noun_tags = corpora.NOUN_TAGS[data.name]
    coarse = [None if t is None else corpora.coarse_class(t, data.name) for t in tags]
    return {
        "tags": tags,
        "noun_tags": [t if t in noun_tags else None for t in tags],
        "coarse": [None if c is None else corpora.COARSE_CLASSES[c] for c in coarse],
        "number": [noun_tags[t][0] if t in noun_tags else None for t in tags],
        "type": [noun_tags[t][1] if t in noun_tags else None for t in tags],
    }


def words_of(classes, key, value):
    return [i for i, c in enumerate(classes[key]) if c == value]


# ----------------------------------------------------------------------------------------------
# The sweep and the singular values
# ----------------------------------------------------------------------------------------------

def analyse_model(path, params, data, args, xp):
    """Run the forward-mode sweep for one LM; returns the per-delay and per-class averages."""
    ids = data.ids[args.split][:args.max_tokens]
    n_per_stream = len(ids) // args.batch_size
    if n_per_stream <= args.max_delay:
        raise AnalysisError(f"--max-delay {args.max_delay} is larger than the text: the {args.split} "
                            f"split gives {n_per_stream} words per stream ({args.batch_size} streams)")
    streams = corpora.batchify(ids, args.batch_size)                         # (B, N)
    stream_labels = {"pos": corpora.batchify(position_labels(data, args.split, len(ids)),
                                             args.batch_size)}               # (B, N)
    names = {"pos": corpora.COARSE_CLASSES}
    on_device = {k: xp.asarray(v, dtype=np.float32) for k, v in params.items()}
    bar = tqdm(total=streams.size, unit="pos", desc=os.path.basename(path),
               disable=args.no_progress)
    clock = time.perf_counter()
    sums = lm.sweep_state_gradients(on_device, streams, stream_labels, names, args.max_delay,
                                    progress=bar.update, workers=args.workers)
    lm.synchronize(xp)
    seconds = time.perf_counter() - clock
    bar.close()
    empty = [c for c, n in zip(corpora.COARSE_CLASSES, sums.count("pos")[:, 0]) if n == 0]
    if empty:
        raise AnalysisError(f"no word of class {', '.join(empty)} in the analysed text")
    return sums, {"positions": int(streams.size), "seconds": seconds}


def spectrum(G_bar, n):
    """sigma_1, sum of sigma, sum of the top n sigma for each delay: G_bar (K+1, H, E)."""
    S = lm.singular_values(G_bar)                                   # (K+1, min(H, E))
    return {"sigma1": S[:, 0].tolist(), "sum": S.sum(1).tolist(), f"top{n}": S[:, :n].sum(1).tolist()}


def model_results(name, params, meta, classes, sums, args):
    """Figure 1, Table 1 and Figure 2 numbers for one LM (optionally in the whitened space)."""
    embeddings = params["embedding"].astype(np.float64)                # (V, E)
    D = lm.whitening(embeddings) if args.whiten else None

    def in_space(G):
        return G if D is None else lm.whiten_gradient(G, D)

    result = {"checkpoint": name, "embeddings": meta["settings"]["embeddings"],
              "valid_ppl": meta["train"].get("best_valid_ppl"),
              "test_ppl": meta["train"].get("test_ppl"), "whitened": bool(args.whiten)}
    result["spectrum"] = {s: spectrum(in_space(sums.mean("all", s)[0]), args.top_n) for s in "ch"}
    pos_means = in_space(sums.mean("pos", args.state)[:, 0])          # (6, H, E) at tau = 0
    sigma1 = lm.singular_values(pos_means)[:, 0]
    result["table1"] = {c: {"sigma1": float(s), "normalised": float(s / sigma1.sum()),
                            "count": int(n)}
                        for c, s, n in zip(corpora.COARSE_CLASSES, sigma1, sums.count("pos")[:, 0])}
    G_all = in_space(sums.mean("all", args.state)[0])                 # (K+1, H, E)
    vectors = {}
    for prop, (key, a, b) in PROPERTIES.items():
        words_a, words_b = words_of(classes, key, a), words_of(classes, key, b)
        if not words_a or not words_b:
            raise AnalysisError(f"property {prop} has no {a if not words_a else b} words")
        d = lm.property_vector(embeddings, words_a, words_b)          # eq. (2)
        d = d if D is None else lm.whiten_vector(d, D)
        vectors[prop] = d
        result.setdefault("figure2", {})[prop] = {
            "m": [lm.relative_memory(G, d) for G in G_all],                     # eq. (5-6)
            f"cos_H{args.top_n}": [lm.subspace_cosine(G, d, args.top_n) for G in G_all],  # (3-4)
            "words": [len(words_a), len(words_b)],
        }
    result["property_cosine"] = float(vectors["sg-pl"] @ vectors["common-proper"])
    return result


# ----------------------------------------------------------------------------------------------
# Table 2: linear separability of POS classes in embedding space (scikit-learn)
# ----------------------------------------------------------------------------------------------

def task_dataset(classes, task, min_words=10):
    """(word ids, labels) for one row of Table 2 (word types labelled by their majority tag).

    "all" keeps the tags that are the majority tag of at least ``min_words`` words.
    """
    key, keep = dict(TABLE2_TASKS)[task]
    labels = classes[key]
    if keep is None and key == "tags":
        counts = collections.Counter(t for t in labels if t not in (None, corpora.EOS))
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


def table2(models, seeds, progress=True):
    """Rows of Table 2: {task: {model name: accuracy, ...}} on each LM's embeddings."""
    rows = {}
    for task, _ in tqdm(TABLE2_TASKS, desc="Table 2", leave=False, disable=not progress):
        rows[task] = {}
        for name, model in models.items():
            ids, labels = task_dataset(model["classes"], task)
            counts = collections.Counter(labels)
            if len(counts) < 2 or min(counts.values()) < 2:
                raise AnalysisError(f"Table 2 row {task!r} needs two classes of at least two words "
                                    f"each, and has {dict(counts)}")
            accuracy, setting, sizes = best_validation_accuracy(model["params"]["embedding"][ids],
                                                                labels, seeds)
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


def plot_figure1(results, state, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, left = plt.subplots(figsize=(6.4, 4))
    right = left.twinx()
    for colour, r in zip(("tab:blue", "tab:green", "tab:red", "tab:purple"), results):
        spec = r["spectrum"][state]
        delays = np.arange(len(spec["sigma1"]))
        left.plot(delays, spec["sigma1"], "-", color=colour, label=f"{r['checkpoint']}: $\\sigma_1$")
        right.plot(delays, spec["sum"], "--", color=colour, label=f"{r['checkpoint']}: $\\sum\\sigma$")
    left.set_xlabel("delay $\\tau$")
    left.set_ylabel("largest singular value $\\sigma_1$ (solid)")
    right.set_ylabel("sum of singular values (dashed)")
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    left.legend(handles, [h.get_label() for h in handles], fontsize=8)
    left.set_title(f"Figure 1: SVD of the average gradient $d{state}_t/dx_{{t-\\tau}}$")
    save_figure(fig, path)
    plt.close(fig)


def plot_figure2(results, state, n, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, r in zip(axes[0], results):
        spec = r["spectrum"][state]
        delays = np.arange(len(spec["sigma1"]))
        total = np.array(spec["sum"])
        ax.plot(delays, np.array(spec["sigma1"]) / total, color="0.6", lw=1, label="$\\sigma_1/\\sum\\sigma$")
        ax.plot(delays, np.array(spec[f"top{n}"]) / total, color="0.6", lw=1, ls="--",
                label=f"$\\sum_{{i\\leq{n}}}\\sigma_i/\\sum\\sigma$")
        for colour, prop in zip(("tab:blue", "tab:orange"), PROPERTIES):
            values = r["figure2"][prop]
            ax.plot(delays, values["m"], "-", color=colour, label=f"m, {prop}")
            ax.plot(delays, values[f"cos_H{n}"], ":", color=colour, label=f"cos(d, $H_{n}$), {prop}")
        ax.set_xlabel("delay $\\tau$")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{r['checkpoint']} (cos(d_sg-pl, d_common-proper) = {r['property_cosine']:.2f})",
                     fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Figure 2: relative memory m and cos(d, $H_n$)")
    save_figure(fig, path)
    plt.close(fig)


def write_outputs(results, t2, args, timing):
    os.makedirs(args.out_dir, exist_ok=True)
    out = lambda name: os.path.join(args.out_dir, name)  # noqa: E731
    plot_figure1(results, args.state, out("figure1"))
    plot_figure2(results, args.state, args.top_n, out("figure2"))
    names = [r["checkpoint"] for r in results]
    write_table(out("table1"), ["class", *names],
                [[c, *(f"{r['table1'][c]['sigma1']:.3f} ({r['table1'][c]['normalised']:.2f})"
                       for r in results)] for c in corpora.COARSE_CLASSES])
    write_table(out("table2"), ["classes", *names],
                [[f"{task} ({next(iter(t2[task].values()))['classes']})",
                  *(f"{100 * t2[task][n]['accuracy']:.2f}" for n in names)] for task in t2])
    with open(out("results.json"), "w") as f:
        json.dump({"settings": vars(args), "models": results, "table2": t2, "timing": timing},
                  f, indent=1)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        xp = lm.get_backend(args.device)
        corpus_cache, models, results, timing = {}, {}, [], {}
        for path in args.checkpoints:           # every input checked before the long sweeps
            params, meta, data, classes = load_model(path, corpus_cache)
            name = os.path.splitext(os.path.basename(path))[0]
            if name in models:
                raise AnalysisError(f"two checkpoints are named {name}: give them different names")
            if args.top_n > params["embedding"].shape[1]:
                raise AnalysisError(f"--top-n {args.top_n} is larger than the embedding size "
                                    f"{params['embedding'].shape[1]} of {path}")
            models[name] = dict(path=path, params=params, meta=meta, data=data, classes=classes)
        for name, m in models.items():
            sums, timing[name] = analyse_model(m["path"], m["params"], m["data"], args, xp)
            results.append(model_results(name, m["params"], m["meta"], m["classes"], sums, args))
            print(f"{name}: {timing[name]['positions']} positions in {timing[name]['seconds']:.0f} s",
                  file=sys.stderr)
        t2 = table2(models, args.classifier_seeds, progress=not args.no_progress)
        write_outputs(results, t2, args, timing)
    except (lm.CheckpointError, corpora.CorpusError, AnalysisError, RuntimeError, ValueError,
            np.linalg.LinAlgError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote figures, tables and results.json to {args.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
