"""What does the LSTM state remember of the words it read, and for how long? The paper's results.

    python analyze.py                                  # checkpoints/joint.npz and checkpoints/cbow.npz
    python analyze.py --checkpoints a.npz b.npz --max-tokens 20000 --out-dir /tmp/results
    python analyze.py --checkpoints ud.npz --classes my_classes.txt --property Tense=Past:Tense=Pres

Reads the evaluation text with each LM while carrying forward-mode state gradients for every delay
0..K (lstm_memory.sweep_state_gradients), then writes to --out-dir:

  figure1.png/.pdf   sigma_1 and sum of singular values of Gbar_tau against delay tau (paper Fig. 1)
  table1.md/.csv     sigma_1 at tau = 0 per part of speech, normalised in brackets (Table 1)
  table1_bands.md/.csv  Table 1 within frequency-rank bands of the vocabulary
  table2.md/.csv     accuracy of logistic regression predicting POS classes from embeddings (Table 2)
  figure2.png/.pdf   relative memory m and cos(d, H_n) for each property, e.g. sg-pl (Figure 2)
  response.png/.pdf  |Gbar_tau (mean_a - mean_b)| for each property: Figure 2 before normalising d
  frequency.png/.pdf sigma_1 against delay for words of a few frequency bins
  validation.png/.pdf validation perplexity per epoch of each LM's training
  results.json       every number behind them

A position whose word is <unk> is in no class (Table 1 shows it as an extra row, outside the
normalisation). The sweeps' sums are saved first (in a folder 'sweeps' beside each checkpoint, or
--sweep-cache): a rerun with the same checkpoints, text, classes and K reuses them, so --whiten,
--state or another --property (without --average class) sweeps nothing again. Exit status: 0 done,
1 error, 2 usage, 130 interrupted.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import itertools
import json
import os
import sys
import time
import warnings
import zipfile

import numpy as np
from tqdm import tqdm

import checkpointing
from checkpointing import CheckpointError
import corpus
import lstm_memory

POS_TASKS = [  # Table 2 rows over POS classes, kept when the scheme has all of their classes
    ("N-V-Adj-Adv-Pro", ("nouns", "verbs", "adjectives", "adverbs", "pronouns")),
    ("N-V", ("nouns", "verbs")),
    ("N-Adj", ("nouns", "adjectives")),
    ("V-Adv", ("verbs", "adverbs")),
]
MIN_WORD_COUNT = 5   # word types rarer than this in training are in no class (CBOW's min count)
STATES = {"c": ("c",), "h": ("h",), "both": ("c", "h")}
HELD_OUT = 0.2       # Table 2: share of the word types scored once
RESERVED = {"all", "freq", "pos", "pos_band", "unk", "tags", "noun_tags", "nouns",  # labelings,
            *(row for row, _ in POS_TASKS)}                   # word_classes keys, Table 2 rows


def at_least(low, kind=int):
    """An argparse type: a number >= low, refused with its range in the message."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} is out of range: at least {low}")
        return value
    return parse


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoints", nargs="+",
                   default=["checkpoints/joint.npz", "checkpoints/cbow.npz"],
                   help="LM checkpoints written by train.py (one colour/panel each; they may differ "
                        "in --hidden-size: add --whiten to compare their singular values)")
    p.add_argument("--split", default="valid", choices=corpus.SPLITS, help="evaluation text")
    p.add_argument("--max-delay", type=at_least(0), default=30, help="K: delays 0..K")
    p.add_argument("--state", default="c", choices=tuple(STATES),
                   help="c: LSTM cell state (the paper's); h: hidden state (its future work); "
                        "both: c and h side by side")
    p.add_argument("--top-n", type=at_least(1), default=5,
                   help="n of cos(d, H_n) in Figure 2 (at most min(H, E))")
    p.add_argument("--average", default="all", choices=("all", "class"),
                   help="Figure 2's Gbar_tau: over all positions (eq. 1, the paper's) or over the "
                        "positions whose word at t - tau is of the property's two classes "
                        "(results.json then has both)")
    p.add_argument("--classes", default=None, metavar="FILE",
                   help="class file (format: docs/own-text.md) instead of the corpus kind's "
                        "built-in classes")
    p.add_argument("--property", action="append", default=[], metavar="A:B",
                   help="one more property d_{A-B} for Figure 2: two classes of the scheme or "
                        "CoNLL-U features, e.g. Tense=Past:Tense=Pres (repeatable)")
    p.add_argument("--frequency-bins", type=at_least(1), nargs="+", default=[100, 1000, 5000],
                   metavar="RANK", help="frequency-rank edges of the word bins (frequency.png, "
                                        "table1_bands.md)")
    p.add_argument("--max-tokens", type=at_least(1), default=None,
                   help="analyse the first N tokens only")
    p.add_argument("--batch-size", type=at_least(1), default=20, help="parallel streams of the text")
    p.add_argument("--whiten", action="store_true",
                   help="whiten the embedding space (Cholesky factor of its covariance) so that "
                        "singular values of different LMs share one scale")
    p.add_argument("--out-dir", default="results", help="where figures, tables and JSON go")
    p.add_argument("--sweep-cache", default=None, metavar="DIR",
                   help="where the sweeps' sums are kept for reruns (default: a folder 'sweeps' "
                        "beside each checkpoint)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    p.add_argument("--workers", type=at_least(1), default=os.cpu_count(),
                   help="CPU threads for the sweep, each over its share of the streams")
    p.add_argument("--classifier-seeds", type=at_least(1), default=1,
                   help="initialisation seeds in Table 2's grid search")
    p.add_argument("--cv-folds", type=at_least(2), default=3,
                   help="Table 2's honest protocol: folds of the cross-validation that picks the "
                        "setting on the training words")
    p.add_argument("--no-table2", action="store_true", help="skip Table 2 (minutes of fits)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.frequency_bins != sorted(set(args.frequency_bins)):
        p.error("--frequency-bins must be increasing ranks")
    for prop in args.property:
        sides = prop.split(":")
        if len(sides) != 2 or not all(sides):
            p.error(f"--property {prop}: write two classes or features as A:B")
        if sides[0] == sides[1]:
            p.error(f"--property {prop}: the two sides must differ")
    return args


class AnalysisError(Exception):
    """Input the analysis cannot use, with one sentence saying why."""


# ----------------------------------------------------------------------------------------------
# Inputs: checkpoints, the corpus they were trained on, class schemes, word classes
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Model:
    """One LM and what the analysis knows of it."""
    name: str                  # the checkpoint's file name without .npz
    path: str
    params: dict               # PARAM_SHAPES arrays (NumPy)
    meta: dict                 # the checkpoint's metadata (settings, training history)
    data: corpus.Corpus        # the corpus it was trained on (shared by LMs of one corpus)
    corpus_key: str            # its corpus settings as JSON: LMs with equal keys share one text
    classes: dict = None       # word_classes(): one list over the vocabulary per key
    whitening: np.ndarray = None   # D (E, E) of --whiten


def load_model(path, corpus_cache) -> Model:
    """A checkpoint with the corpus it was trained on; ``corpus_cache`` maps corpus settings to
    the Corpus, so that LMs of one corpus share one reading of it."""
    params, vocab, meta, _ = checkpointing.load_checkpoint(path, required=("settings",))
    check_model_meta(path, meta)
    corpus_settings = corpus.corpus_settings(meta["settings"])
    key = json.dumps(corpus_settings, sort_keys=True)
    if key not in corpus_cache:
        corpus_cache[key] = corpus.load_corpus(**corpus_settings)
    data = corpus_cache[key]
    checkpointing.check_vocab(path, vocab, data.vocab)
    name = os.path.splitext(os.path.basename(path))[0]
    return Model(name, path, params, meta, data, key)


SETTING_TYPES = {"corpus": str, "vocab_size": int, "max_train_tokens": (int, type(None)),
                 "seed": int, "embeddings": str}     # the settings analyze.py reads, and their types


def check_model_meta(path, meta):
    """Refuse, in one sentence, metadata whose settings or training history analyze.py cannot use."""
    settings, train = meta["settings"], meta.get("train", {})
    for key, kinds in SETTING_TYPES.items():
        if not isinstance(settings.get(key), kinds) or isinstance(settings.get(key), bool):
            raise CheckpointError(f"{path} lacks a usable training setting {key} "
                                  f"({settings.get(key)!r:.40}): was it written by train.py?")
    history = train.get("history", []) if isinstance(train, dict) else None
    usable = isinstance(history, list) and all(
        isinstance(entry, dict) and all(isinstance(entry.get(k), (int, float))
                                        for k in ("epoch", "valid_ppl")) for entry in history)
    if not usable:
        raise CheckpointError(f"{path} has a training state analyze.py cannot read: was it written "
                              "by train.py?")


def load_scheme(args, data):
    """The class scheme for ``data``: --classes FILE or the built-in one, plus --property pairs."""
    if args.classes:
        scheme = corpus.read_scheme(args.classes)
        corpus.check_tags_exist(scheme, data.tags["train"])
    elif data.scheme is None:
        raise AnalysisError(f"no built-in classes fit the tags of {data.name}: describe them in a "
                            f"class file and pass --classes FILE")
    else:
        scheme = corpus.builtin_scheme(data.scheme)
    for prop in args.property:
        scheme.properties[prop] = tuple(corpus.property_side(scheme, side, f"--property {prop}")
                                        for side in prop.split(":"))
    return scheme


def word_classes(data, scheme, min_count=MIN_WORD_COUNT):
    """Each vocabulary word's classes for Table 2 and eq. (2), from its majority tag in the training
    split (with that tag's majority features); <unk>, <eos> and words seen fewer than
    ``min_count`` times there are in no class.

    Returns {"tags", "noun_tags", "pos", and one key per property}: one list over the vocabulary
    each (a tag or class name, or None); "noun_tags" is a noun's tag read as one of the paper's
    four (corpus.PTB_NOUN_TAG), for Table 2's "nouns" row. A word that fits both sides of a
    property is in the first.
    """
    analyses = corpus.majority_analyses(data, "train", min_count=min_count)
    names = list(scheme.pos)
    index = [-1 if a is None else scheme.pos_index(*a) for a in analyses]
    pos = [names[i] if i >= 0 else None for i in index]
    classes = {"tags": [None if a is None else a[0] for a in analyses], "pos": pos,
               "noun_tags": [corpus.PTB_NOUN_TAG.get(a[0], a[0]) if p == "nouns" else None
                             for a, p in zip(analyses, pos)]}
    for prop, sides in scheme.properties.items():
        classes[prop] = [None if a is None else next((c.name for c in sides if c.matches(*a)), None)
                         for a in analyses]
    return classes


def usable_properties(scheme, models, asked=()):
    """The properties whose two sides have words in every LM's vocabulary. An empty side of a
    user's class file or of a property ``asked`` for (--property) is an error naming its line; a
    built-in property without words (a corpus with no Number features, say) is left out with a
    note."""
    usable = []
    for prop, sides in scheme.properties.items():
        if prop in RESERVED:
            raise AnalysisError(f"{sides[0].where}: a property cannot be named {prop!r} (reserved: "
                                f"{', '.join(sorted(RESERVED))})")
        if sides[0].name == sides[1].name:
            raise AnalysisError(f"{sides[0].where}: property {prop!r} has the class "
                                f"{sides[0].name!r} on both sides")
        empty = [c for c in sides if any(c.name not in m.classes[prop] for m in models)]
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
    bins[[i for i, w in enumerate(vocab) if w in (corpus.UNK, corpus.EOS)]] = -1
    return names, bins


def writable_directory(path, what):
    """Create ``path`` and prove it writable with a probe file, before any long work."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise AnalysisError(f"{what} {path} is a file, not a folder: give a folder's name")
    try:
        checkpointing.probe_folder(path)
    except OSError as error:
        raise AnalysisError(f"{what} {path} cannot be written: {error.strerror or error}") from None


# ----------------------------------------------------------------------------------------------
# The labelled text and the two sweeps (delay 0 for Table 1; delays 0..K for the figures)
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class LabelledText:
    """The evaluation text as (B, N) streams of word ids and, per sweep, labelings: {name: (B, N)
    class ids, -1 = in no class} with their class names."""
    streams: np.ndarray
    table1: dict               # labelings of the delay-0 sweep: pos, pos_band, unk
    table1_names: dict
    memory: dict               # labelings of the 0..K sweep: freq (+ properties with --average class)
    memory_names: dict


def labelled_text(data, scheme, properties, args) -> LabelledText:
    """Streams and labelings of the --split text; <unk> positions are in no POS, band or property
    class (they get their own labeling, Table 1's extra row)."""
    ids = data.ids[args.split][:args.max_tokens]                             # (N,)
    n_per_stream = len(ids) // args.batch_size
    if n_per_stream <= args.max_delay:
        raise AnalysisError(f"--max-delay {args.max_delay} is larger than the text: the {args.split} "
                            f"split gives {n_per_stream} words per stream ({args.batch_size} streams)")
    tags, feats = data.tags[args.split][:len(ids)], data.feats[args.split][:len(ids)]   # (N,)
    known = ids != data.word_to_id[corpus.UNK]                               # (N,)
    pos = np.where(known, scheme.pos_labels(tags, feats), -1)                # (N,)
    empty = [c for i, c in enumerate(scheme.pos.values()) if not (pos == i).any()]
    if empty:
        raise AnalysisError(f"{empty[0].where}: no word of class {empty[0].name} in the analysed text")
    bin_names, bins = frequency_bins(data.vocab, args.frequency_bins)
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


def cache_folder(model, args):
    """--sweep-cache, or the folder 'sweeps' beside the checkpoint."""
    return args.sweep_cache or os.path.join(os.path.dirname(os.path.abspath(model.path)), "sweeps")


def sweep(model, streams, labelings, names, K, args, xp):
    """lstm_memory.sweep_state_gradients for one LM, or its sums from --sweep-cache when this LM,
    text, labelling and K were swept before; returns StateGradientSums and the seconds it took."""
    key = hashlib.sha256()
    with open(model.path, "rb") as f:
        key.update(hashlib.file_digest(f, "sha256").digest())
    for array in (streams, *(labelings[n] for n in sorted(labelings))):
        key.update(np.ascontiguousarray(array).tobytes())
        key.update(str(array.shape).encode())                  # the streams' layout
    key.update(json.dumps([K, args.split, sorted(names.items())]).encode())
    path = os.path.join(cache_folder(model, args), f"{model.name}-K{K}-{key.hexdigest()[:16]}.npz")
    H, E = model.params["W_h"].shape[1], model.params["W_x"].shape[1]
    sums = lstm_memory.StateGradientSums(names, K, H, E, xp=np)
    if os.path.exists(path):
        try:
            with np.load(path, allow_pickle=False) as saved:
                sums.sums, sums.counts = saved["sums"], saved["counts"]
            print(f"{model.name}: reusing the sweep in {path}", file=sys.stderr)
            return sums, 0.0
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            print(f"{model.name}: {path} is unreadable: sweeping again", file=sys.stderr)
    on_device = {k: xp.asarray(v, dtype=np.float32) for k, v in model.params.items()}
    bar = tqdm(total=streams.size, unit="pos", desc=f"{model.name} K={K}", disable=args.no_progress)
    clock = time.perf_counter()
    sums = lstm_memory.sweep_state_gradients(on_device, streams, labelings, names, K,
                                    progress=bar.update, workers=args.workers)
    lstm_memory.synchronize(xp)
    seconds = time.perf_counter() - clock
    bar.close()
    sums.flush()
    checkpointing.atomic_write(path, lambda f: np.savez(f, sums=lstm_memory.to_numpy(sums.sums),
                                                        counts=sums.counts))
    return sums, seconds


# ----------------------------------------------------------------------------------------------
# The paper's outputs, one function each, from the sums of the sweeps
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Spectrum:
    """Figure 1 for one state: per delay, sigma_1, the sum of sigma and the sum of the top n."""
    sigma1: list
    sum: list
    top_n: list


@dataclasses.dataclass
class PropertyMemory:
    """Figure 2 for one property and state, per delay: r = |Gbar d| (eq. 5), m = r / sigma_1 (eq. 6),
    cos(d, H_n) (eq. 3-4), and r_abs = r |mean_a - mean_b|: how far the state moves when a word of
    class b is swapped for one of class a, tau steps back. None where no position was averaged."""
    r: list
    m: list
    cos_Hn: list
    r_abs: list


@dataclasses.dataclass
class ModelResults:
    checkpoint: str
    embeddings: str
    hidden_size: int
    valid_ppl: float | None
    test_ppl: float | None
    whitened: bool
    spectrum: dict = dataclasses.field(default_factory=dict)     # state -> Spectrum (Figure 1)
    table1: dict = dataclasses.field(default_factory=dict)       # state -> class -> row
    table1_bands: dict = dataclasses.field(default_factory=dict)  # state -> class | band -> row
    figure2: dict = dataclasses.field(default_factory=dict)      # state -> property -> curves
    figure2_class: dict = dataclasses.field(default_factory=dict)  # the same, --average class
    frequency: dict = dataclasses.field(default_factory=dict)    # state -> bin -> sigma_1 per delay
    properties: dict = dataclasses.field(default_factory=dict)   # property -> words, |difference|
    property_cosines: dict = dataclasses.field(default_factory=dict)


def figure1(G_bar, n) -> Spectrum:
    """Figure 1: the singular values of Gbar_tau = U S V^T (eq. 1), G_bar (K+1, H, E)."""
    S = lstm_memory.singular_values(G_bar)                                   # (K+1, min(H, E))
    return Spectrum(S[:, 0].tolist(), S.sum(1).tolist(), S[:, :n].sum(1).tolist())


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


def figure2(G_bar, d, length, n) -> PropertyMemory:
    """Figure 2 for a unit property vector d (eq. 2) with |mean_a - mean_b| = ``length``: r, m
    (eq. 5-6) and cos(d, H_n) (eq. 3-4) at every delay of G_bar (K+1, H, E)."""
    curves = PropertyMemory([], [], [], [])
    for G in G_bar:
        defined = not np.isnan(G).any()
        r, m = lstm_memory.relative_memory(G, d) if defined else (None, None)
        curves.r.append(r)
        curves.m.append(m)
        curves.cos_Hn.append(lstm_memory.subspace_cosine(G, d, n) if defined else None)
        curves.r_abs.append(r * length if defined else None)
    return curves


def frequency_sigma1(G_bar_per_bin, counts, names):
    """sigma_1 of Gbar_tau over the words of each frequency bin: G_bar_per_bin (bins, K+1, H, E)."""
    return {name: {"sigma1": [None if np.isnan(G).any() else float(lstm_memory.singular_values(G)[0])
                              for G in per_delay], "count": int(n)}
            for name, per_delay, n in zip(names, G_bar_per_bin, counts)}


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


def model_results(model, scheme, properties, sums0, sums, args) -> ModelResults:
    """Every output for one LM from its two sweeps (``sums0``: delay 0, ``sums``: 0..K), for each
    state of --state, in the whitened embedding space with --whiten."""
    D = model.whitening
    space = (lambda G: G) if D is None else (lambda G: lstm_memory.whiten_gradient(G, D))  # noqa: E731
    train = model.meta.get("train", {})
    result = ModelResults(model.name, model.meta["settings"]["embeddings"],
                          int(model.params["W_h"].shape[1]), train.get("best_valid_ppl"),
                          train.get("test_ppl"), bool(args.whiten))
    vectors = property_vectors(model, scheme, properties, D)
    result.properties = {prop: {"words": words, "difference_norm": length}
                         for prop, (_, length, words) in vectors.items()}
    result.property_cosines = {f"{p} / {q}": float(vectors[p][0] @ vectors[q][0])
                               for p, q in itertools.combinations(vectors, 2)}
    for state in "ch":
        result.spectrum[state] = figure1(space(sums.mean("all", state)[0]), args.top_n)
    for state in STATES[args.state]:
        result.table1[state] = {**table1(space(sums0.mean("pos", state)[:, 0]),
                                         sums0.count("pos")[:, 0], sums0.labelings["pos"]),
                                **table1(space(sums0.mean("unk", state)[:, 0]),
                                         sums0.count("unk")[:, 0], [corpus.UNK], normalise=False)}
        result.table1_bands[state] = table1(space(sums0.mean("pos_band", state)[:, 0]),
                                            sums0.count("pos_band")[:, 0],
                                            sums0.labelings["pos_band"], normalise=False)
        G_all = space(sums.mean("all", state)[0])                     # (K+1, H, E)
        result.figure2[state] = {p: figure2(G_all, d, length, args.top_n)
                                 for p, (d, length, _) in vectors.items()}
        if args.average == "class":
            result.figure2_class[state] = {p: figure2(space(sums.mean(p, state)[0]), d, length,
                                                      args.top_n)
                                           for p, (d, length, _) in vectors.items()}
        result.frequency[state] = frequency_sigma1(space(sums.mean("freq", state)),
                                                   sums.count("freq")[:, 0], sums.labelings["freq"])
    return result


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

    "all" and "nouns" keep the tags that are the majority tag of at least ``min_words`` words.
    """
    key, keep = task_spec
    labels = classes[key]
    if keep is None and key in ("tags", "noun_tags"):
        counts = collections.Counter(t for t in labels if t is not None)
        keep = {t for t, n in counts.items() if n >= min_words}
    ids = [i for i, label in enumerate(labels) if label is not None and (keep is None or label in keep)]
    return np.array(ids, dtype=int), np.array([labels[i] for i in ids])


def why_not_splittable(labels, folds):
    """None when ``labels`` can be split 80/20 stratified and the training part into ``folds``
    stratified folds; else the reason, for the note that leaves the row out."""
    counts = collections.Counter(labels)
    held_out = int(np.ceil(HELD_OUT * len(labels)))
    if len(counts) < 2:
        return f"it has {len(counts)} class"
    if held_out < len(counts) or len(labels) - held_out < len(counts):
        return f"{len(labels)} words are too few to hold out one of each of {len(counts)} classes"
    if min(counts.values()) < folds + 1:
        rare = min(counts, key=counts.get)
        return f"class {rare} has {counts[rare]} words, fewer than --cv-folds + 1 = {folds + 1}"
    return None


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
    """Accuracy on (X_test, y_test) of one logistic regression of the grid fitted on the rest."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    kwargs = {k: v for k, v in setting.items() if k != "scheme"}
    model = LogisticRegression(max_iter=100, tol=1e-3, **kwargs)
    if setting["scheme"] == "ovr" and len(set(y_train)) > 2:
        model = OneVsRestClassifier(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X_train, y_train).score(X_test, y_test)


def separability(X, y, seeds=1, folds=3, split_seed=0, jobs=-1):
    """Table 2's accuracy under two protocols, on word types split 80/20 stratified by class
    (features standardised on the training part):

      paper:  the best held-out accuracy over the grid (the setting chosen on the words it is
              scored on: optimistic);
      honest: the setting with the best ``folds``-fold cross-validated accuracy on the training
              words, scored once on the held-out words.

    Returns {"paper", "honest", "cv", "paper_setting", "honest_setting", "words": [train, held out]}.
    """
    from joblib import Parallel, delayed
    from sklearn.model_selection import StratifiedKFold, train_test_split
    from sklearn.preprocessing import StandardScaler

    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=HELD_OUT, stratify=y,
                                                        random_state=split_seed)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    grid = list(classifier_grid(seeds))
    cv_splits = StratifiedKFold(folds, shuffle=True, random_state=split_seed).split(X_train, y_train)
    parts = [(X_train, y_train, X_test, y_test)]                     # [0]: scored on held-out words
    parts += [(X_train[fit], y_train[fit], X_train[score], y_train[score])   # [1:]: the CV folds
              for fit, score in cv_splits]
    scores = np.array(Parallel(n_jobs=jobs)(delayed(fit_and_score)(s, *part)
                                            for s in grid for part in parts)).reshape(len(grid), -1)
    held_out, cv = scores[:, 0], scores[:, 1:].mean(axis=1)
    best, chosen = int(np.argmax(held_out)), int(np.argmax(cv))     # the first of equal scores
    return {"paper": float(held_out[best]), "honest": float(held_out[chosen]),
            "cv": float(cv[chosen]), "paper_setting": grid[best], "honest_setting": grid[chosen],
            "words": [len(y_train), len(y_test)]}


def table2_datasets(models, tasks, folds):
    """{row: {model name: (word ids, labels)}} for the rows every LM can split; the others are
    left out with a note (checked before the sweeps)."""
    rows = {}
    for task, spec in tasks.items():
        datasets = {m.name: task_dataset(m.classes, spec) for m in models}
        reasons = [why_not_splittable(labels, folds) for _, labels in datasets.values()]
        if any(reasons):
            print(f"note: Table 2 row {task} left out: {next(r for r in reasons if r)}",
                  file=sys.stderr)
        else:
            rows[task] = datasets
    return rows


def table2(models, datasets, args):
    """Rows of Table 2: {row: {model name: separability(...) + number of classes}}."""
    embeddings = {m.name: m.params["embedding"] for m in models}
    rows = {}
    for task, by_model in tqdm(datasets.items(), desc="Table 2", leave=False,
                               disable=args.no_progress):
        rows[task] = {name: {"classes": int(len(set(labels))),
                             **separability(embeddings[name][ids], labels, args.classifier_seeds,
                                            args.cv_folds)}
                      for name, (ids, labels) in by_model.items()}
    return rows


# ----------------------------------------------------------------------------------------------
# Output: figures, tables, JSON, each written whole (checkpointing.atomic_write)
# ----------------------------------------------------------------------------------------------

def write_table(stem, header, rows):
    """The same table as Markdown (stem.md) and CSV (stem.csv)."""
    import csv
    markdown = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    markdown += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    checkpointing.atomic_write(stem + ".md", lambda f: f.write("\n".join(markdown) + "\n"), "w")
    checkpointing.atomic_write(stem + ".csv", lambda f: csv.writer(f).writerows([header, *rows]), "w")


def tex(text):
    """A label matplotlib shows as typed: a checkpoint named $x$ is not mathtext."""
    return str(text).replace("$", r"\$")


def plot_panels(path, title, rows, columns, draw, ylabel, log=False, ylim=None,
                xlabel="delay $\\tau$"):
    """The one plotting helper: a grid of panels (rows x columns), draw(ax, row, column) fills
    each; saved as path.png and path.pdf."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(5.5 * len(columns), 4 * len(rows)),
                             squeeze=False, layout="constrained")
    for ax_row, row in zip(axes, rows):
        for ax, column in zip(ax_row, columns):
            draw(ax, row, column)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_yscale("log" if log else "linear")
            if ylim:
                ax.set_ylim(*ylim)
            if ax.get_legend() is None:
                ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    for ext in ("png", "pdf"):
        checkpointing.atomic_write(f"{path}.{ext}", lambda f: fig.savefig(f, format=ext, dpi=150,
                                                            bbox_inches="tight"))
    plt.close(fig)


def delays(values):
    return np.arange(len(values))


def as_array(values):
    return np.array([np.nan if v is None else v for v in values], dtype=float)


COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def plot_figure1(results, states, path):
    """sigma_1 (solid) and the sum of singular values (dashed, right axis) against delay; one panel
    per state, one colour per LM."""
    sizes_differ = len({result.hidden_size for result in results}) > 1

    def draw(ax, state, _):
        right = ax.twinx()
        for colour, result in zip(itertools.cycle(COLOURS), results):
            name = tex(result.checkpoint) + (f" (H={result.hidden_size})" if sizes_differ else "")
            spec = result.spectrum[state]
            ax.plot(delays(spec.sigma1), spec.sigma1, "-", color=colour, label=f"{name}: $\\sigma_1$")
            right.plot(delays(spec.sum), spec.sum, "--", color=colour, label=f"{name}: $\\sum\\sigma$")
        right.set_ylabel("sum of singular values (dashed)")
        ax.set_title(f"SVD of the average gradient $d{state}_t/dx_{{t-\\tau}}$"
                     + (" (whitened)" if results[0].whitened else ""), fontsize=10)
        (left_handles, left_labels), (right_handles, right_labels) = (
            ax.get_legend_handles_labels(), right.get_legend_handles_labels())
        ax.legend(left_handles + right_handles, left_labels + right_labels, fontsize=7)

    plot_panels(path, "Figure 1: memory against delay", states, [None], draw,
                "largest singular value $\\sigma_1$ (solid)")


def property_curves(result, state, average):
    """Figure 2's curves of one LM and state: over all positions, or over each property's words."""
    return (result.figure2 if average == "all" else result.figure2_class)[state]


def plot_figure2(results, states, n, average, path):
    """Relative memory m (solid) and cos(d, H_n) (dotted) of each property against delay, with the
    spectrum's share of sigma_1 and of the top n in grey; rows: states, columns: LMs."""
    def draw(ax, state, result):
        if average == "all":          # the spectrum's shares belong to the all-positions Gbar
            spec = result.spectrum[state]
            total = np.array(spec.sum)
            ax.plot(delays(total), np.array(spec.sigma1) / total, color="0.6", lw=1,
                    label="$\\sigma_1/\\sum\\sigma$")
            ax.plot(delays(total), np.array(spec.top_n) / total, color="0.6", lw=1, ls="--",
                    label=f"$\\sum_{{i\\leq{n}}}\\sigma_i/\\sum\\sigma$")
        curves = property_curves(result, state, average)
        for colour, (prop, memory) in zip(itertools.cycle(COLOURS), curves.items()):
            ax.plot(delays(memory.m), as_array(memory.m), "-", color=colour, label=f"m, {tex(prop)}")
            ax.plot(delays(memory.m), as_array(memory.cos_Hn), ":", color=colour,
                    label=f"cos(d, $H_{n}$), {tex(prop)}")
        cosines = ", ".join(f"cos({tex(pair)}) = {cosine:.2f}"
                            for pair, cosine in result.property_cosines.items())
        ax.set_title(f"{tex(result.checkpoint)}, state {state}" + (f"\n{cosines}" if cosines else ""),
                     fontsize=9)

    over = "all positions" if average == "all" else "the positions of each property's words"
    plot_panels(path, f"Figure 2: relative memory m and cos(d, $H_n$), $\\bar G_\\tau$ over {over}",
                states, results, draw, "m, cos", ylim=(0, 1.02))


def plot_response(results, states, average, path):
    """r_abs = |Gbar_tau (mean_a - mean_b)| of each property against delay (log scale)."""
    def draw(ax, state, result):
        for prop, memory in property_curves(result, state, average).items():
            norm = result.properties[prop]["difference_norm"]
            ax.plot(delays(memory.r_abs), as_array(memory.r_abs),
                    label=f"{tex(prop)} ($|\\mu_a - \\mu_b|$ = {norm:.2f})")
        ax.set_title(f"{tex(result.checkpoint)}, state {state}", fontsize=9)

    plot_panels(path, "Response of the state to each property (eq. 5 before eq. 2's normalisation)",
                states, results, draw, "$|\\bar G_\\tau (\\mu_a - \\mu_b)|$", log=True)


def plot_frequency(results, states, path):
    """sigma_1 of the average gradient over the words of each frequency bin, against delay."""
    def draw(ax, state, result):
        for name, values in result.frequency[state].items():
            ax.plot(delays(values["sigma1"]), as_array(values["sigma1"]),
                    label=f"{name} ({values['count']} tokens)")
        ax.set_title(f"{tex(result.checkpoint)}, state {state}", fontsize=9)

    plot_panels(path, "$\\sigma_1$ of $\\bar G_\\tau$ per word-frequency bin (rank in the vocabulary)",
                states, results, draw, "$\\sigma_1$", log=True)


def plot_validation(models, path):
    """Validation perplexity after every epoch of each LM's training (its checkpoint's history)."""
    def draw(ax, *_):
        for colour, model in zip(itertools.cycle(COLOURS), models):
            history = model.meta.get("train", {}).get("history", [])
            ax.plot([h["epoch"] for h in history], [h["valid_ppl"] for h in history], "o-",
                    color=colour, markersize=3, label=tex(model.name))

    plot_panels(path, "Validation perplexity per epoch", [None], [None], draw, "perplexity",
                log=True, xlabel="epoch")


def json_safe(value):
    """NaN and infinities as null: results.json stays JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_tables(results, rows_of_table2, scheme, states, out):
    """table1 (with <unk> after the classes), table1_bands and table2 as Markdown and CSV."""
    columns = [(result, state) for result in results for state in states]
    header = [result.checkpoint + (f" ({state})" if len(states) > 1 else "")
              for result, state in columns]

    def cell(row, with_share=True):
        if row is None or row["sigma1"] is None:
            return "-"
        if with_share:
            return f"{row['sigma1']:.3f}" + (f" ({row['normalised']:.2f})" if row["normalised"]
                                             is not None else "")
        return f"{row['sigma1']:.3f} n={row['count']}"

    write_table(out("table1"), ["class", *header],
                [[name, *(cell(result.table1[state][name]) for result, state in columns)]
                 for name in [*scheme.pos, corpus.UNK]])
    bands = list(dict.fromkeys(b for result in results for b in result.table1_bands[states[0]]))
    write_table(out("table1_bands"), ["class | band", *header],
                [[band, *(cell(result.table1_bands[state].get(band), False)
                          for result, state in columns)] for band in bands])
    if rows_of_table2:
        names = [result.checkpoint for result in results]
        protocols = ("paper", "honest")
        write_table(out("table2"), ["classes", *(f"{n} ({p})" for n in names for p in protocols)],
                    [[f"{task} ({next(iter(row.values()))['classes']})",
                      *(f"{100 * row[n][p]:.2f}" for n in names for p in protocols)]
                     for task, row in rows_of_table2.items()])


def write_outputs(models, results, rows_of_table2, scheme, args, timing, figures=True):
    """The figures (unless ``figures`` is False), the tables and results.json into --out-dir."""
    out = lambda name: os.path.join(args.out_dir, name)  # noqa: E731
    states = STATES[args.state]
    if figures:
        plot_validation(models, out("validation"))
        plot_figure1(results, states, out("figure1"))
        plot_figure2(results, states, args.top_n, args.average, out("figure2"))
        plot_response(results, states, args.average, out("response"))
        plot_frequency(results, states, out("frequency"))
    write_tables(results, rows_of_table2, scheme, states, out)
    report = {"settings": vars(args), "classes": scheme.source,
              "models": [dataclasses.asdict(result) for result in results], "table2": rows_of_table2,
              "timing": timing}
    checkpointing.atomic_write(out("results.json"),
                               lambda f: json.dump(json_safe(report), f, indent=1, allow_nan=False),
                               "w")


# ----------------------------------------------------------------------------------------------
# main: every check first, then the sweeps (cached), then Table 2 and the outputs
# ----------------------------------------------------------------------------------------------

def prepare(args):
    """Everything that can fail before the long work: output folders, checkpoints, corpus,
    classes, properties, the text's length, Table 2's rows. Returns (models, scheme, properties,
    texts by corpus, Table 2 datasets)."""
    writable_directory(args.out_dir, "--out-dir")
    corpus_cache, models, schemes = {}, [], {}
    for path in args.checkpoints:
        model = load_model(path, corpus_cache)
        writable_directory(cache_folder(model, args), "the sweep cache")
        if model.name in (m.name for m in models):
            raise AnalysisError(f"two checkpoints are named {model.name}: give them different names")
        H, E = model.params["W_h"].shape[1], model.params["embedding"].shape[1]
        if args.top_n > min(H, E):
            raise AnalysisError(f"--top-n {args.top_n} is larger than min(H, E) = {min(H, E)} of "
                                f"{path} (the embedding size is {E}, the state size {H})")
        if args.whiten:
            try:
                model.whitening = lstm_memory.whitening(model.params["embedding"].astype(np.float64))
            except np.linalg.LinAlgError:
                raise AnalysisError(f"--whiten: the embeddings of {path} have a singular "
                                    "covariance (fewer words than dimensions, or repeated "
                                    "vectors)") from None
        if model.corpus_key not in schemes:
            schemes[model.corpus_key] = load_scheme(args, model.data)
        model.classes = word_classes(model.data, schemes[model.corpus_key])
        models.append(model)
    if len({s.source for s in schemes.values()}) > 1:
        raise AnalysisError("these LMs were trained on corpora with different classes "
                            f"({', '.join(sorted({s.source for s in schemes.values()}))}): "
                            "analyse them in separate runs")
    scheme = next(iter(schemes.values()))
    properties = usable_properties(scheme, models, args.property)
    texts = {m.corpus_key: labelled_text(m.data, scheme, properties, args) for m in models}
    datasets = {} if args.no_table2 else table2_datasets(models, table2_tasks(scheme, properties),
                                                         args.cv_folds)
    return models, scheme, properties, texts, datasets


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        xp = lstm_memory.get_backend(args.device)
        models, scheme, properties, texts, datasets = prepare(args)
        results, timing = [], {}
        for model in models:
            text = texts[model.corpus_key]
            sums0, seconds0 = sweep(model, text.streams, text.table1, text.table1_names, 0, args, xp)
            sums, seconds = sweep(model, text.streams, text.memory, text.memory_names,
                                  args.max_delay, args, xp)
            timing[model.name] = {"positions": int(text.streams.size), "seconds_delay0": seconds0,
                                  "seconds": seconds}
            results.append(model_results(model, scheme, properties, sums0, sums, args))
            if seconds:
                print(f"{model.name}: {text.streams.size} positions in {seconds:.0f} s "
                      f"({text.streams.size / seconds:.0f}/s)", file=sys.stderr)
        write_outputs(models, results, {}, scheme, args, timing)   # all but Table 2, first
        if datasets:
            write_outputs(models, results, table2(models, datasets, args), scheme, args, timing,
                          figures=False)                           # then Table 2 beside them
    except (CheckpointError, corpus.CorpusError, AnalysisError, RuntimeError, ValueError,
            np.linalg.LinAlgError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the finished sweeps are kept for the next run (--sweep-cache)",
              file=sys.stderr)
        return 130
    print(f"wrote figures, tables and results.json to {args.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
