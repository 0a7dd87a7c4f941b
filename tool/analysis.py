"""analyze.py's inputs, each checked before the long work: checkpoints and the corpus they were
trained on, class schemes and properties, Table 2's rows; and the sweeps, kept in a cache so that a
rerun with the same LM, text, classes and K reuses them."""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import sys
import time
import zipfile

import numpy as np
from tqdm import tqdm

import corpus
import lstm_memory
from tool import checkpoints, files, parallel
from tool.bootstrap import BLOCKS, BlockSums
from tool.checkpoints import CheckpointError
from tool.cli import cache_home
from tool.corpora import corpus_digest, corpus_settings, load_corpus
from tool.own_text import read_scheme

POS_TASKS = [  # Table 2 rows over POS classes, kept when the scheme has all of their classes
    ("N-V-Adj-Adv-Pro", ("nouns", "verbs", "adjectives", "adverbs", "pronouns")),
    ("N-V", ("nouns", "verbs")),
    ("N-Adj", ("nouns", "adjectives")),
    ("V-Adv", ("verbs", "adverbs")),
]
HELD_OUT = 0.2       # Table 2: share of the word types scored once
RESERVED = {"all", "freq", "pos", "pos_band", "unk", "tags", "noun_tags", "nouns",  # labelings,
            *(row for row, _ in POS_TASKS)}                   # word_classes keys, Table 2 rows


def check_options(parser, args):
    """The checks argparse cannot make on analyze.py's options (a usage error, status 2)."""
    if args.frequency_bins != sorted(set(args.frequency_bins)):
        parser.error("--frequency-bins must be increasing ranks")
    if args.whiten and (args.sentence or args.sentences):
        parser.error("--whiten compares LMs' averages on one scale; a --sentence picture is drawn "
                     "in each LM's own embedding space: give one of them")
    for prop in args.property:
        sides = prop.split(":")
        if len(sides) == 1 and (args.sentence or args.sentences) and prop.strip():
            continue                                     # a property's name, for --sentence
        if len(sides) != 2 or not all(sides):
            parser.error(f"--property {prop}: write two classes or features as A:B")
        if sides[0] == sides[1]:
            parser.error(f"--property {prop}: the two sides must differ")
    return args


class AnalysisError(Exception):
    """Input the analysis cannot use, with one sentence saying why."""


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
    cell: object = dataclasses.field(default_factory=lambda: lstm_memory.LSTM)  # of cells.CELLS


def load_model(path, corpus_cache, train_parser) -> Model:
    """A checkpoint with the corpus it was trained on; ``corpus_cache`` maps corpus settings to
    the Corpus, so that LMs of one corpus share one reading of it."""
    params, vocab, meta, _ = checkpoints.load_checkpoint(path, required=("settings",))
    check_model_meta(path, meta, train_parser)
    settings = corpus_settings(meta["settings"])
    key = json.dumps(settings, sort_keys=True)
    if key not in corpus_cache:
        try:
            corpus_cache[key] = load_corpus(**settings)
        except corpus.CorpusError as error:
            raise corpus.CorpusError(f"{path} was trained on {settings['name']}: {error}") from None
    data = corpus_cache[key]
    checkpoints.check_vocab(path, vocab, data.vocab)
    recorded = meta.get("corpus_digest")                  # LMs trained before it was recorded: none
    if recorded is not None:
        data.digest = getattr(data, "digest", None) or corpus_digest(data)   # once per corpus
    if recorded is not None and recorded != data.digest:
        raise CheckpointError(f"{path} was trained on {settings['name']} as it was then: its "
                              "words or tags have changed since (restore that text, or train "
                              "the LM again)")
    name = os.path.splitext(os.path.basename(path))[0]
    return Model(name, path, params, meta, data, key, cell=checkpoints.cell_of(meta))


SETTING_TYPES = {"corpus": str, "vocab_size": int, "max_train_tokens": (int, type(None)),
                 "seed": int, "embeddings": str}     # the settings analyze.py reads, and their types


def check_model_meta(path, meta, train_parser):
    """Refuse, in one sentence, metadata whose settings or training history analyze.py cannot use
    (every saved setting checked like train.py's command line, ``train_parser``)."""
    settings, train = meta["settings"], meta.get("train", {})
    checkpoints.check_setting_values(path, settings, train_parser, list(settings))
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
        scheme = read_scheme(args.classes)
        corpus.check_tags_exist(scheme, data.tags["train"])
    elif data.scheme is None:
        raise AnalysisError(f"no built-in classes fit the tags of {data.name}: describe them in a "
                            f"class file and pass --classes FILE")
    else:
        scheme = corpus.builtin_scheme(data.scheme)
    for prop in args.property:
        if ":" not in prop and prop not in scheme.properties:
            raise AnalysisError(f"--property {prop}: {scheme.source} have no property of that name "
                                f"(they have {', '.join(scheme.properties) or 'none'})")
        if ":" in prop:
            scheme.properties[prop] = tuple(corpus.property_side(scheme, side, f"--property {prop}")
                                            for side in prop.split(":"))
    return scheme


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
                                f"no word seen {corpus.MIN_WORD_COUNT} times in training")
        else:
            print(f"note: property {prop} left out: class {empty[0].name} has no word in this "
                  f"corpus", file=sys.stderr)
    return usable


def writable_directory(path, what):
    """Create ``path`` and prove it writable with a probe file, before any long work."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise AnalysisError(f"{what} {path} is a file, not a folder: give a folder's name")
    try:
        files.probe_folder(path)
    except OSError as error:
        raise AnalysisError(f"{what} {path} cannot be written: {error.strerror or error}") from None


def note_empty_classes(scheme, pos, tags, feats, known, text: str) -> None:
    """A POS class with no position in the analysed text is reported with n 0 (Table 1's '-'),
    with a note saying why: no known word has its tags, or earlier classes take all of them.
    Args: pos, tags, feats, known: (N,) per token of the text."""
    pairs = set(zip(tags[known], feats[known]))
    for index, word_class in enumerate(scheme.pos.values()):
        if (pos == index).any():
            continue
        takers = sorted({scheme.pos_index(t, f) for t, f in pairs if word_class.matches(t, f)})
        why = ("every token its tags match is in an earlier class ("
               + ", ".join(list(scheme.pos)[i] for i in takers) + "): a token is in the first "
               "class that matches it" if takers else "no known word of the text has its tags")
        print(f"note: {word_class.where}: no word of class {word_class.name} in {text}: {why}; "
              "its Table 1 entry is empty (n 0)", file=sys.stderr)


def frequency_sigma1(G_bar_per_bin, counts, names):
    """sigma_1 of Gbar_tau over the words of each frequency bin (frequency.png, beyond the paper):
    G_bar_per_bin (bins, K+1, H, E)."""
    return {name: {"sigma1": [None if np.isnan(G).any() else float(lstm_memory.singular_values(G)[0])
                              for G in per_delay], "count": int(n)}
            for name, per_delay, n in zip(names, G_bar_per_bin, counts)}


def check_cache_folder(folder):
    """A sweep cache that cannot be written is a note: the sweeps are then not kept."""
    try:
        files.probe_folder(folder)
    except OSError as error:
        print(f"note: the sweep cache {folder} cannot be written ({error.strerror or error}): "
              "the sweeps will not be kept for a rerun", file=sys.stderr)


def cache_folder(model, args):
    """--sweep-cache, or the folder 'sweeps' of the user's cache folder (tool.cli.cache_home)."""
    return args.sweep_cache or os.path.join(cache_home(), "sweeps")


SWEEP_VERSION = "state-gradient-sums/3"   # changes whenever the sums a sweep gives would change


def sweep_key(model, streams, labelings, names, K) -> str:
    """What the sums depend on, hashed: the LM's arrays as loaded (not the file, which may have
    changed since), the text and its labels with their layout, the class names, K, the code."""
    key = hashlib.sha256(SWEEP_VERSION.encode())
    for name in sorted(model.params):
        array = np.ascontiguousarray(model.params[name])
        key.update(f"{name} {array.dtype} {array.shape}".encode())
        key.update(array.tobytes())
    for array in (streams, *(labelings[n] for n in sorted(labelings))):
        key.update(np.ascontiguousarray(array).tobytes())
        key.update(str(array.shape).encode())                  # the streams' layout
    key.update(json.dumps([K, sorted(names.items())]).encode())
    return key.hexdigest()


def sums_digest(sums, counts) -> str:
    """A checksum of a sweep's sums and counts, kept beside them in the cache file."""
    return hashlib.sha256(np.ascontiguousarray(sums).tobytes()
                          + np.ascontiguousarray(counts).tobytes()).hexdigest()


def read_cached_sums(path, key, shape) -> tuple:
    """(BlockSums arrays sums, counts) from the cache file ``path`` if it holds the sums of
    ``key`` with ``shape``, else (None, the reason it cannot be used; None when there is none)."""
    if not os.path.lexists(path):
        return None, None
    try:
        with np.load(path, allow_pickle=False) as saved:
            stored_key, cached, counts = str(saved["key"]), saved["sums"], saved["counts"]
            stored_digest = str(saved["digest"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        return None, f"it cannot be read ({type(error).__name__})"
    if stored_key != key:
        return None, "it holds the sums of another LM, text or code"
    if stored_digest != sums_digest(cached, counts):
        return None, "its sums are not the ones that were written"
    if cached.shape != shape or counts.shape != shape[:3]:
        return None, f"its sums have the shape {cached.shape}, not {shape}"
    if not np.all(np.isfinite(cached)) or counts.dtype.kind not in "iu" or np.any(counts < 0):
        return None, "its sums are not finite or its counts negative"
    return (cached.astype(np.float64), counts.astype(np.int64)), ""


def cached_sweep(model, streams, labelings, names, K, args, xp):
    """parallel.sweep_blocks for one LM, or its sums from the sweep cache when the same key
    (``sweep_key``) was swept before; returns BlockSums and the seconds it took.

    A cache file that cannot be used is swept again with one line saying why; a cache that cannot
    be written costs the cache only (one line), never the results."""
    key = sweep_key(model, streams, labelings, names, K)
    path = os.path.join(cache_folder(model, args), f"{model.name}-K{K}-{key[:16]}.npz")
    H, E = model.params["W_h"].shape[1], model.params["W_x"].shape[1]
    C = 1 + sum(len(classes) for classes in names.values())
    states = model.cell.states
    shape = (min(len(streams), BLOCKS), K + 1, C, len(states) * H, E)           # (nb, K+1, C, SH, E)
    cached, why_not = read_cached_sums(path, key, shape)
    if cached is not None:
        print(f"{model.name}: reusing the sweep in {path}", file=sys.stderr)
        return BlockSums(names, K, H, E, *cached, states), 0.0
    if why_not:
        print(f"{model.name}: not reusing {path}: {why_not}; sweeping again", file=sys.stderr)
    on_device = {k: xp.asarray(v, dtype=np.float32) for k, v in model.params.items()}
    bar = tqdm(total=streams.size, unit="pos", desc=f"{model.name} K={K}", disable=args.no_progress)
    clock = time.perf_counter()
    blocks = parallel.sweep_blocks(on_device, streams, labelings, names, K, progress=bar.update,
                                   workers=args.workers, cell=model.cell)
    lstm_memory.synchronize(xp)
    seconds = time.perf_counter() - clock
    bar.close()
    print(f"{model.name}: {streams.size} positions in {seconds:.0f} s ({streams.size / seconds:.0f}/s)",
          file=sys.stderr)
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory", path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        files.atomic_write(path, lambda f: np.savez(
            f, key=np.asarray(key), sums=blocks.sums, counts=blocks.counts,
            digest=np.asarray(sums_digest(blocks.sums, blocks.counts))))
    except OSError as error:
        print(f"note: {model.name}: the sweep could not be kept in {path} "
              f"({error.strerror or error}); the results are written all the same", file=sys.stderr)
    return blocks, seconds


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


def check_out_dir_kind(args):
    """An --out-dir holds one kind of run: a sentence picture (--sentence) or the averages, never
    the results.json of one beside the figures of the other."""
    path = os.path.join(args.out_dir, "results.json")
    try:
        with open(path, encoding="utf-8") as handle:
            earlier = "sentences" in json.load(handle)
    except (OSError, ValueError, TypeError):
        return
    if earlier != bool(args.sentence or args.sentences):
        kind = "a --sentence picture" if earlier else "an analysis of the averages"
        raise AnalysisError(f"--out-dir {args.out_dir} holds {kind} ({path}): give this run "
                            "another --out-dir")


def resolve_state(args):
    """--state for these checkpoints: by default c when all are LSTMs, else h; c (or both) asked
    of a GRU or an RNN, which have one state, h, stops here, before any work."""
    one_state = [(path, cell) for path, cell in
                 ((path, checkpoints.peek_cell(path)) for path in args.checkpoints)
                 if cell is not None and "c" not in cell.states]
    if args.state is None:
        args.state = "h" if one_state else "c"
    elif one_state and args.state != "h":
        path, cell = one_state[0]
        raise AnalysisError(f"{path} is a {cell.name.upper()}, whose one state is h: --state "
                            f"{args.state} asks for the LSTM's cell state c (use --state h)")


def load_models(args, train_parser) -> tuple:
    """Every checkpoint of --checkpoints with the corpus it was trained on and its word classes,
    checked: --out-dir and the sweep cache writable, distinct names, --top-n possible, --whiten's
    factor, one class scheme for all; ``train_parser``: train.py's, whose ranges the saved
    settings must keep. Returns (models, scheme)."""
    writable_directory(args.out_dir, "--out-dir")
    check_out_dir_kind(args)
    resolve_state(args)
    corpus_cache, models, schemes = {}, [], {}
    for path in args.checkpoints:
        model = load_model(path, corpus_cache, train_parser)
        check_cache_folder(cache_folder(model, args))
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
        model.classes = corpus.word_classes(model.data, schemes[model.corpus_key])
        models.append(model)
    if len({s.source for s in schemes.values()}) > 1:
        raise AnalysisError("these LMs were trained on corpora with different classes "
                            f"({', '.join(sorted({s.source for s in schemes.values()}))}): "
                            "analyse them in separate runs")
    return models, next(iter(schemes.values()))
