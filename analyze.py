"""What does the LSTM state remember of the words it read, and for how long? The paper's results.

    python analyze.py                                  # checkpoints/joint.npz and checkpoints/cbow.npz
    python analyze.py --checkpoints a.npz b.npz --max-tokens 20000 --out-dir /tmp/results
    python analyze.py --checkpoints ud.npz --classes my_classes.txt --property Tense=Past:Tense=Pres

Reads the evaluation text with each LM while carrying forward-mode state gradients for every delay
0..K (lstm_memory.sweep_state_gradients), then writes Figure 1, Tables 1 and 2, Figure 2 and more
to --out-dir, with results.json holding every number behind them (the list: tool/outputs.py).

A word <unk> is in no class (Table 1's extra row, outside the normalisation). Every number has a
95 % interval (a bootstrap over the text's streams: tool/bootstrap.py).

Reading order: the options, the labelled text, one function per paper output, ``analyse``. Checks,
the sweep cache, the bootstrap, the writers and --sentence pictures are in tool/.
"""
from __future__ import annotations

import argparse
import collections
import itertools
import os
import sys
import warnings

import numpy as np
from tqdm import tqdm

import corpus
import lstm_memory
import train
from tool import analysis, bootstrap, cli, outputs, parallel
from tool import sentences as tool_sentences
from tool.checkpoints import CheckpointError

STATES = {"c": ("c",), "h": ("h",), "both": ("c", "h")}
EXIT_STATUS = "exit status: 0 done; 1 error (one line on stderr); 2 usage; 130 Ctrl-C"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=EXIT_STATUS,
                                formatter_class=cli.HelpFormatter)
    p.add_argument("--checkpoints", nargs="+",
                   default=["checkpoints/joint.npz", "checkpoints/cbow.npz"],
                   help="LM checkpoints written by train.py (of different --hidden-size: --whiten)")
    p.add_argument("--split", default="valid", choices=corpus.SPLITS, help="evaluation text")
    p.add_argument("--max-delay", type=cli.at_least(0), default=30, help="K: delays 0..K")
    p.add_argument("--state", default=None, choices=tuple(STATES),
                   help="c: LSTM cell state (the paper's, the default); h: hidden state (its future "
                        "work; the default with a GRU or RNN, which have no c); both: side by side")
    p.add_argument("--top-n", type=cli.at_least(1), default=5,
                   help="n of cos(d, H_n) in Figure 2 (at most min(H, E))")
    p.add_argument("--average", default="all", choices=("all", "class"),
                   help="Figure 2's Gbar_tau over all positions (eq. 1, the paper's) or also over "
                        "those whose word at t - tau is of the property's two classes")
    p.add_argument("--classes", default=None, metavar="FILE",
                   help="class file (docs/own-text.md) instead of the built-in classes")
    p.add_argument("--property", action="append", default=[], metavar="A:B",
                   help="one more property d_{A-B} for Figure 2: two classes of the scheme or "
                        "CoNLL-U features, e.g. Tense=Past:Tense=Pres (repeatable); with "
                        "--sentence, a property's name (sg-pl) or A:B for the second panel")
    p.add_argument("--sentence", action="append", default=[], metavar="TEXT",
                   help="only the memory of this sentence, as a picture: no sweep, no Table 2 "
                        "(repeatable; words separated by spaces)")
    p.add_argument("--sentences", metavar="FILE", help="--sentence for each line of FILE")
    p.add_argument("--frequency-bins", type=cli.at_least(1), nargs="+", default=[100, 1000, 5000],
                   metavar="RANK", help="rank edges of the word frequency bins (table1_bands)")
    p.add_argument("--max-tokens", type=cli.at_least(1), default=None,
                   help="analyse the first N tokens only")
    p.add_argument("--batch-size", type=cli.at_least(1), default=20, help="streams of the text")
    p.add_argument("--whiten", action="store_true",
                   help="whiten the embedding space, so that the singular values of LMs share a scale")
    p.add_argument("--out-dir", default="results", help="where figures, tables and JSON go")
    p.add_argument("--sweep-cache", default=None, metavar="DIR",
                   help=f"where the sweeps' sums are kept (default: {cli.cache_home()}/sweeps)")
    p.add_argument("--device", default="auto", choices=cli.DEVICES, help=cli.DEVICE_HELP)
    p.add_argument("--workers", type=cli.at_least(1), default=os.cpu_count(),
                   help="CPU threads for the sweep, each over its share of the streams")
    p.add_argument("--classifier-seeds", type=cli.at_least(1), default=1,
                   help="initialisation seeds in Table 2's grid search")
    p.add_argument("--cv-folds", type=cli.at_least(2), default=3,
                   help="Table 2's honest protocol: folds of the CV that picks its setting")
    p.add_argument("--no-table2", action="store_true", help="skip Table 2 (minutes of fits)")
    p.add_argument("--bootstrap", type=cli.at_least(0), default=1000, metavar="R",
                   help="resamples of the streams for every number's 95%% interval (0: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def parse_args(argv=None):
    p = build_parser()
    return analysis.check_options(p, p.parse_args(argv))


# (B, N) streams of word ids and per sweep {name: (B, N) class ids, -1 = none} with class names:
# table1 for the delay-0 sweep (pos, pos_band, unk), memory for 0..K (freq; properties if class)
LabelledText = collections.namedtuple("LabelledText",
                                      "streams table1 table1_names memory memory_names")


def labelled_text(data, scheme, properties, args) -> LabelledText:
    """Streams and labelings of the --split text; <unk> positions are in no POS, band or property
    class (they get their own labeling, Table 1's extra row)."""
    ids = data.ids[args.split][:args.max_tokens]                             # (N,)
    n_per_stream = len(ids) // args.batch_size
    if n_per_stream <= args.max_delay:
        raise analysis.AnalysisError(
            f"--max-delay {args.max_delay} is larger than the text: the {args.split} split gives "
            f"{n_per_stream} words per stream ({args.batch_size} streams)")
    tags, feats = data.tags[args.split][:len(ids)], data.feats[args.split][:len(ids)]   # (N,)
    known = ids != data.word_to_id[corpus.UNK]                               # (N,)
    pos = np.where(known, scheme.pos_labels(tags, feats), -1)                # (N,)
    analysis.note_empty_classes(scheme, pos, tags, feats, known,
                                f"the {args.split} text of {data.name}")
    bin_names, bins = corpus.frequency_bins(data.vocab, args.frequency_bins)
    band = bins[ids]                                                         # (N,)
    pos_band = np.where((pos >= 0) & (band >= 0), pos * len(bin_names) + band, -1)
    streams = corpus.batchify(ids, args.batch_size)                         # (B, N / B)
    table1 = {"pos": pos, "pos_band": pos_band, "unk": np.where(known, -1, 0)}
    table1_names = {"pos": list(scheme.pos), "unk": [corpus.UNK],
                    "pos_band": [f"{c} | {b}" for c in scheme.pos for b in bin_names]}
    memory, memory_names = {"freq": band}, {"freq": bin_names}
    for prop in properties if args.average == "class" else ():
        side = corpus.token_labels(scheme.properties[prop], tags, feats)    # (N,) 0, 1 or -1
        memory[prop], memory_names[prop] = np.where(known & (side >= 0), 0, -1), [prop]
    def batch(labelings):                                                   # (N,) -> (B, N / B)
        return {name: corpus.batchify(labels, args.batch_size) for name, labels in labelings.items()}

    return LabelledText(streams, batch(table1), table1_names, batch(memory), memory_names)


def figure1(G_bar, n) -> outputs.Spectrum:
    """Figure 1: the singular values of Gbar_tau = U S V^T (eq. 1), G_bar (K+1, H, E)."""
    S = lstm_memory.singular_values(G_bar)                                   # (K+1, min(H, E))
    return outputs.Spectrum(S[:, 0].tolist(), S.sum(1).tolist(), S[:, :n].sum(1).tolist())


def table1(G_bar_per_class, counts, names, normalise=True):
    """Table 1: sigma_1 of Gbar_0 per class, and its share of the sum over the classes in brackets.
    G_bar_per_class (C, H, E) at tau = 0; counts (C,) positions behind each."""
    defined = ~np.isnan(G_bar_per_class).any(axis=(1, 2))
    sigma1 = np.full(len(names), np.nan)
    sigma1[defined] = lstm_memory.singular_values(G_bar_per_class[defined])[:, 0]
    total = np.nansum(sigma1)
    return {c: {"sigma1": None if np.isnan(s) else float(s),
                "normalised": float(s / total) if normalise and not np.isnan(s) else None,
                "count": int(n)} for c, s, n in zip(names, sigma1, counts)}


def figure2(G_bar, d, length, n) -> outputs.PropertyMemory:
    """Figure 2 for a unit property vector d (eq. 2) with |mean_a - mean_b| = ``length``: r, m
    (eq. 5-6) and cos(d, H_n) (eq. 3-4) at every delay of G_bar (K+1, H, E)."""
    curves = outputs.PropertyMemory([], [], [], [])
    for G in G_bar:
        defined = not np.isnan(G).any()
        r, m = lstm_memory.relative_memory(G, d) if defined else (None, None)
        curves.r.append(r)
        curves.m.append(m)
        curves.cos_Hn.append(lstm_memory.subspace_cosine(G, d, n) if defined else None)
        curves.r_abs.append(r * length if defined else None)
    return curves


def property_vectors(model, scheme, properties, D):
    """Eq. (2) for every property: {prop: (unit d, |mean_a - mean_b|, [words a, words b])}, in the
    whitened space when D is given (difference -> D^-1 difference)."""
    embeddings = model.params["embedding"].astype(np.float64)        # (V, E)
    vectors = {}
    for prop in properties:
        words = [[i for i, c in enumerate(model.classes[prop]) if c == side.name]
                 for side in scheme.properties[prop]]
        d, length = lstm_memory.property_vector(embeddings, *words)            # eq. (2)
        if D is not None:
            difference = lstm_memory.whiten_vector(length * d, D)
            length = float(np.linalg.norm(difference))
            d = difference / length
        vectors[prop] = (d, length, [len(w) for w in words])
    return vectors


def model_results(model, scheme, properties, sums0, sums, args) -> outputs.ModelResults:
    """Every output for one LM from its two sweeps (``sums0``: delay 0, ``sums``: 0..K), for each
    state of --state, in the whitened embedding space with --whiten."""
    D = model.whitening
    space = (lambda G: G) if D is None else (lambda G: lstm_memory.whiten_gradient(G, D))  # noqa: E731
    record = model.meta.get("train", {})
    result = outputs.ModelResults(model.name, model.meta["settings"]["embeddings"],
                                  int(model.params["W_h"].shape[1]), record.get("best_valid_ppl"),
                                  record.get("test_ppl"), bool(args.whiten), cell=model.cell.name)
    vectors = property_vectors(model, scheme, properties, D)
    result.properties = {prop: {"words": words, "difference_norm": length}
                         for prop, (_, length, words) in vectors.items()}
    result.property_cosines = {f"{p} / {q}": float(vectors[p][0] @ vectors[q][0])
                               for p, q in itertools.combinations(vectors, 2)}
    for state in model.cell.states:
        result.spectrum[state] = figure1(space(sums.G_bar(state)), args.top_n)
    for state in STATES[args.state]:
        def table1_of(labeling, names=None, normalise=False):       # Gbar_0 per class (C, H, E)
            return table1(space(sums0.G_bar_per_class(labeling, state)[:, 0]),
                          sums0.count(labeling)[:, 0], names or sums0.labelings[labeling], normalise)
        result.table1[state] = {**table1_of("pos", normalise=True), **table1_of("unk", [corpus.UNK])}
        result.table1_bands[state] = table1_of("pos_band")
        G_all = space(sums.G_bar(state))                                  # (K+1, H, E)
        result.figure2[state] = {p: figure2(G_all, d, length, args.top_n)
                                 for p, (d, length, _) in vectors.items()}
        if args.average == "class":
            result.figure2_class[state] = {
                p: figure2(space(sums.G_bar_per_class(p, state)[0]), d, length, args.top_n)
                for p, (d, length, _) in vectors.items()}
        result.frequency[state] = analysis.frequency_sigma1(
            space(sums.G_bar_per_class("freq", state)), sums.count("freq")[:, 0],
            sums.labelings["freq"])
    return result


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


def fit_and_score(setting, X_train, y_train, X_test, y_test):
    """(X_test,) True where one logistic regression of the grid, fitted on the rest, is right."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    kwargs = {k: v for k, v in setting.items() if k != "scheme"}
    model = LogisticRegression(max_iter=100, tol=1e-3, **kwargs)
    if setting["scheme"] == "ovr" and len(set(y_train)) > 2:
        model = OneVsRestClassifier(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X_train, y_train).predict(X_test) == y_test


def separability(X, y, seeds=1, folds=3, split_seed=0, jobs=-1, progress=None):
    """Table 2's accuracy under two protocols, on word types split 80/20 stratified by class
    (features standardised on the training part):

      paper:  the best held-out accuracy over the grid (the setting chosen on the words it is
              scored on: optimistic);
      honest: the setting with the best ``folds``-fold cross-validated accuracy on the training
              words, scored once on the held-out words.

    ``progress``: optional callable(n) told after each fit. Returns {"paper", "honest", "cv",
    "paper_setting", "honest_setting", "words": [train, held out]}.
    """
    from joblib import Parallel, delayed
    from sklearn.model_selection import StratifiedKFold, train_test_split
    from sklearn.preprocessing import StandardScaler

    X_train, X_test, y_train, y_test, _, held_out_index = train_test_split(   # held out: (n,)
        X, y, np.arange(len(y)), test_size=analysis.HELD_OUT, stratify=y, random_state=split_seed)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    grid = list(classifier_grid(seeds))
    cv_splits = StratifiedKFold(folds, shuffle=True, random_state=split_seed).split(X_train, y_train)
    parts = [(X_train, y_train, X_test, y_test)]                     # [0]: scored on held-out words
    parts += [(X_train[fit], y_train[fit], X_train[score], y_train[score])   # [1:]: the CV folds
              for fit, score in cv_splits]
    correct = []                                 # per setting and part: (words,) True if right
    for outcome in Parallel(n_jobs=jobs, return_as="generator")(
            delayed(fit_and_score)(s, *part) for s in grid for part in parts):
        correct.append(outcome)
        if progress:
            progress(1)
    scores = np.array([c.mean() for c in correct]).reshape(len(grid), -1)   # (settings, 1 + folds)
    held_out, cv = scores[:, 0], scores[:, 1:].mean(axis=1)
    best, chosen = int(np.argmax(held_out)), int(np.argmax(cv))     # the first of equal scores
    return {"paper": float(held_out[best]), "honest": float(held_out[chosen]),
            "cv": float(cv[chosen]), "paper_setting": grid[best], "honest_setting": grid[chosen],
            "words": [len(y_train), len(y_test)], "held_out": held_out_index,
            "correct": {"paper": correct[best * len(parts)], "honest": correct[chosen * len(parts)]}}


def table2(models, datasets, args):
    """Rows of Table 2: {row: {model name: separability(...) + number of classes}}."""
    embeddings = {m.name: m.params["embedding"] for m in models}
    fits = len(list(classifier_grid(args.classifier_seeds))) * (1 + args.cv_folds)
    bar = tqdm(total=fits * len(datasets) * len(models), desc="Table 2", unit="fit",
               disable=args.no_progress)
    rows = {task: {name: {"classes": int(len(set(labels))),
                          **separability(embeddings[name][ids], labels, args.classifier_seeds,
                                         args.cv_folds, progress=bar.update)}
                   for name, (ids, labels) in by_model.items()} for task, by_model in datasets.items()}
    bar.close()
    bootstrap.table2_intervals(rows, datasets, args.bootstrap)
    return rows


def analyse(args):
    """Checks; per LM its sweeps (delay 0, 0..K; cached), results, resamples; outputs; Table 2."""
    xp = cli.backend(args.device)
    sentences = tool_sentences.read_sentences(args.sentence, args.sentences)   # checked first
    models, scheme = analysis.load_models(args, train.build_parser())
    if sentences:                               # one sentence's memory, instead of the averages
        return tool_sentences.analyse_sentences(args, sentences, models, STATES[args.state], (
            lambda model, prop: property_vectors(model, scheme, [prop], None)[prop][0]))
    properties = analysis.usable_properties(scheme, models, args.property)
    texts = {m.corpus_key: labelled_text(m.data, scheme, properties, args) for m in models}
    datasets = ({} if args.no_table2 else analysis.table2_datasets(
        models, analysis.table2_tasks(scheme, properties), args.cv_folds))
    results, replicates, timing = [], [], {}
    draws = bootstrap.draws(args.bootstrap, min(args.batch_size, bootstrap.BLOCKS))   # (R, nb)
    for model in models:
        text = texts[model.corpus_key]
        sums0, seconds0 = analysis.cached_sweep(model, text.streams, text.table1,
                                                text.table1_names, 0, args, xp)
        sums, seconds = analysis.cached_sweep(model, text.streams, text.memory, text.memory_names,
                                              args.max_delay, args, xp)
        timing[model.name] = {"positions": int(text.streams.size), "seconds_delay0": seconds0,
                              "seconds": seconds}
        results.append(model_results(model, scheme, properties, sums0.means(), sums.means(), args))
        replicates.append(parallel.resample(lambda w: model_results(  # noqa: B023 (called here)
            model, scheme, properties, sums0.means(w), sums.means(w), args), draws, model.name,
            args.no_progress, args.workers))
    states, paired = STATES[args.state], [m.corpus_key == models[0].corpus_key for m in models]
    report = {"timing": timing, "differences": bootstrap.attach(results, replicates, states,
                                                                properties, paired)}
    outputs.write_outputs(models, results, {}, scheme, states, args, report)   # all but Table 2
    if datasets:
        outputs.write_outputs(models, results, table2(models, datasets, args), scheme, states,
                              args, report, figures=False)                 # then Table 2 beside
    else:
        outputs.remove_stale_table2(args.out_dir)           # a folder never mixes two runs
    print(f"wrote figures, tables and results.json to {args.out_dir}", file=sys.stderr)


def main(argv=None) -> int:
    """Run analyze.py; returns the exit status (EXIT_STATUS)."""
    args = parse_args(argv)
    return cli.exit_status(
        lambda: analyse(args),
        (CheckpointError, corpus.CorpusError, analysis.AnalysisError, RuntimeError, ValueError,
         np.linalg.LinAlgError),
        "interrupted; the finished sweeps are kept for the next run (--sweep-cache)",
        folders=[args.out_dir])


if __name__ == "__main__":
    sys.exit(main())
