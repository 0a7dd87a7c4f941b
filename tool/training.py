"""The bookkeeping of a training run: its settings, its start (new or resumed from
<out>.last.npz, every saved field checked), its saves, its progress bar and its messages.

train.py holds the training itself (the options, the SGD loop with the paper's schedule,
evaluation); this module keeps a run alive across interruptions.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

import cells
import corpus
import lstm_memory
import word2vec
from tool import checkpoints, files
from tool.checkpoints import CheckpointError
from tool.cli import machine_name
from tool.corpora import CORPUS_OPTIONS, corpus_digest, corpus_settings, load_corpus
from tool.languages import planted_perplexity

FORMAT = "lstm-memory-lm/1"
MAX_EPOCHS = 39      # the authors' configuration
# settings that define the model and its data: fixed at the start, restored by --resume
MODEL_SETTINGS = ("epochs", "corpus", "vocab_size", "max_train_tokens", *CORPUS_OPTIONS, "cell",
                  "embedding_size", "hidden_size", "embeddings", "seed", "batch_size", "num_steps",
                  "dropout", "lr", "lr_decay", "decay_after", "max_grad_norm", "init_scale",
                  "min_improvement", "dtype", "cbow_window", "cbow_negative", "cbow_sample",
                  "cbow_min_count", "cbow_epochs", "cbow_lr")
SAVED_DEFAULTS = {**CORPUS_OPTIONS, "cell": "lstm"}   # settings older checkpoints may lack


class TrainingError(Exception):
    """A run that cannot start or go on, with one sentence saying what to do."""


@dataclass
class Run:
    """What a run carries from window to window; ``save_last`` writes it all to <out>.last.npz."""
    settings: argparse.Namespace   # MODEL_SETTINGS and the run options (out, save_every, ...)
    params: dict                   # the LM's arrays, lstm_memory.PARAM_SHAPES, on xp
    vocab: list                    # (V,) words
    state: dict                    # JSON: epoch, window, rng, history, best_valid_ppl, ...
    rng: np.random.Generator       # draws the dropout masks
    h: object                      # (B, H) the cell's output, carried across windows
    c: object                      # (B, H) LSTM cell state (zeros, never read, for a GRU or RNN)
    machine: str
    last_saved: bool = False       # whether <out>.last.npz holds this run's state
    corpus_digest: str = ""        # tool.corpora.corpus_digest of the text it trains on


def last_path(out: str) -> str:
    """The resumable state beside the best checkpoint: runs/joint.npz -> runs/joint.last.npz."""
    root, _ = os.path.splitext(out)
    return root + ".last.npz"


def run_settings(args, saved: dict | None = None) -> argparse.Namespace:
    """The run's settings: the command line's, or on --resume the checkpoint's ``saved`` ones
    (data, model, optimisation) with this command line's run options and, if given, --epochs."""
    settings = {**vars(args), "epochs": args.epochs or MAX_EPOCHS}
    if saved is not None:
        settings.update(saved, epochs=args.epochs or saved["epochs"])
    return argparse.Namespace(**settings)


def prepare_output(out: str):
    """Refuse an --out that cannot be written: create its folder, probe it with a file; remove
    the temporary files an interrupted save to it left."""
    if os.path.isdir(out) or not os.path.basename(out):
        raise TrainingError(f"--out {out} is a folder: give the checkpoint's file name, "
                            f"such as {os.path.join(out, 'joint.npz')}")
    folder = os.path.dirname(os.path.abspath(out))
    try:
        os.makedirs(folder, exist_ok=True)
        for path in (out, last_path(out)):
            files.remove_stale_temporaries(path)
        files.probe_folder(folder, files.temporary_prefix(out))
    except OSError as error:
        reason = f"{error.strerror}: {error.filename}" if error.filename else str(error)
        raise TrainingError(f"--out {out} cannot be written ({reason}): choose a folder you can "
                            "write to") from None


@contextlib.contextmanager
def lock(out: str):
    """Hold <out>.lock (with this process's pid) while a run writes --out, so that two runs
    cannot write one --out at once; a lock whose process is gone is stale and taken over."""
    if os.path.isdir(out) or not os.path.basename(out):
        raise TrainingError(f"--out {out} is a folder: give the checkpoint's file name, "
                            f"such as {os.path.join(out, 'joint.npz')}")
    path = os.path.splitext(out)[0] + ".lock"
    try:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                owner = lock_owner(path)
                if owner is not None:
                    raise TrainingError(f"--out {out} is being written by another train.py (pid "
                                        f"{owner}, {path}): wait for it, or give another --out")
                os.remove(path)                                       # stale: its process is gone
        else:
            raise TrainingError(f"--out {out}: the lock {path} could not be taken")
    except OSError as error:
        raise TrainingError(f"--out {out} cannot be written ({error.strerror or error}): choose a "
                            "folder you can write to") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(str(os.getpid()))
    try:
        yield
    finally:
        if lock_owner(path) == os.getpid():
            os.remove(path)


def lock_owner(path: str):
    """The pid in a lock file if that process is alive, else None (a stale or unreadable lock)."""
    try:
        with open(path) as handle:
            pid = int(handle.read().strip() or "0")
        if pid > 0:
            os.kill(pid, 0)                                  # no signal: is it alive?
            return pid
    except (OSError, ValueError):
        pass
    return None


def check_no_run_there(args):
    """Refuse to start a new run over the checkpoints of another (finished or stopped) unless
    --restart asks for it: a finished run is never overwritten by accident."""
    there = [path for path in (args.out, last_path(args.out)) if os.path.exists(path)]
    if not there or args.resume or args.restart:
        return
    try:
        state = checkpoints.load_checkpoint(there[-1], required=("train",))[2]["train"]
        what = (f"a finished run of {state['epoch']} epochs" if state.get("finished") else
                f"a run stopped at epoch {int(state['epoch']) + 1}, window {int(state['window'])}")
    except (CheckpointError, KeyError, TypeError, ValueError):
        what = "a checkpoint"
    raise TrainingError(f"--out {args.out} holds {what} ({there[-1]}): continue it with --resume, "
                        "start over with --restart, or give another --out")


def check_corpus_length(data, settings):
    """Refuse a split too short for --batch-size streams of one --num-steps window each."""
    B, T = settings.batch_size, settings.num_steps
    for split in corpus.SPLITS:
        if len(data.ids[split]) < B * (T + 1):
            raise corpus.CorpusError(
                f"the {split} split of {settings.corpus} has {len(data.ids[split])} tokens, too "
                f"few for --batch-size {B} streams of one --num-steps {T} window "
                f"({B * (T + 1)} tokens): lower the two, or give a larger corpus or "
                "--max-train-tokens")


def new_run(settings, data, xp) -> Run:
    """A run at its start: initial weights (CBOW embeddings for --embeddings cbow), zero state.

    Args: settings, of ``run_settings``; data, the corpus.Corpus; xp, numpy or cupy.
    """
    dtype = np.dtype(settings.dtype)
    params = lstm_memory.init_params(len(data.vocab), settings.embedding_size, settings.hidden_size,
                            seed=settings.seed, scale=settings.init_scale, dtype=dtype, xp=xp,
                            gates=cells.CELLS[settings.cell].gates)
    state = {"epoch": 0, "window": 0, "rng": None, "history": [], "best_valid_ppl": None,
             "loss_sum": 0.0, "tokens": 0, "finished": False, "train_seconds": 0.0, "cbow": None}
    if settings.embeddings == "cbow":
        params["embedding"], state["cbow"] = cbow_embeddings(settings, data, xp)
    h = xp.zeros((settings.batch_size, settings.hidden_size), dtype=dtype)     # (B, H)
    return Run(settings, params, data.vocab, state, np.random.default_rng(settings.seed),
               h, xp.zeros_like(h), machine_name(xp))


def cbow_progress(batches, description):
    """The progress bar of one CBOW epoch."""
    return tqdm(batches, desc=description, leave=False)


def cbow_embeddings(settings, data, xp):
    """word2vec CBOW embeddings (V, E) for the frozen-embedding LM, in settings.dtype, and their
    record (losses, neighbours, printed); the float64 vectors also go to <out>.cbow.npy.

    Args: settings, of ``run_settings``; data, the corpus.Corpus; xp, numpy or cupy.
    """
    W_in, losses = word2vec.train_cbow(data.ids["train"], len(data.vocab), settings.embedding_size,
                              eos_id=data.word_to_id.get(corpus.EOS),
                              window=settings.cbow_window, negative=settings.cbow_negative,
                              sample=settings.cbow_sample, min_count=settings.cbow_min_count,
                              epochs=settings.cbow_epochs, lr=settings.cbow_lr, seed=settings.seed,
                              progress=None if settings.no_progress else cbow_progress, xp=xp)   # (V, E)
    probes = ["man", "city", "said", "good", "he", "two", "war", "water"]
    record = {"loss_per_epoch": losses, "neighbours": word2vec.nearest_neighbours(W_in, data.vocab, probes)}
    norms = np.linalg.norm(lstm_memory.to_numpy(W_in), axis=1)                            # (V,)
    index = data.word_to_id
    for word, near in record["neighbours"].items():
        listed = ", ".join(f"{w} ({norms[index[w]]:.2f})" for w in near)
        print(f"  cbow neighbours of {word!r} ({norms[index[word]]:.2f}): {listed}  "
              f"[vector norms in brackets]", file=sys.stderr)
    path = os.path.splitext(settings.out)[0] + ".cbow.npy"
    try:
        files.atomic_write(path, lambda handle: np.save(handle, lstm_memory.to_numpy(W_in)))
    except OSError as error:
        raise TrainingError(f"could not write {path} ({error.strerror or error}): free disk "
                            "space and start again") from None
    return W_in.astype(np.dtype(settings.dtype)), record


class EpochProgress:
    """The progress bar of one epoch: windows, running training perplexity, tokens per second."""

    def __init__(self, run: Run, n_windows: int, lr: float):
        self.bar = tqdm(total=n_windows, initial=run.state["window"],
                        disable=run.settings.no_progress, unit="win",
                        desc=f"epoch {run.state['epoch'] + 1}/{run.settings.epochs} lr {lr:.3g}")
        self.start, self.tokens, self.windows = time.perf_counter(), 0, 0

    def update(self, tokens: int, train_ppl: float):
        """One window of ``tokens`` (B x T) done; ``train_ppl``: the epoch's perplexity so far."""
        self.bar.update(1)
        self.tokens += tokens
        self.windows += 1
        if self.windows % 10 == 0:
            tok_s = self.tokens / (time.perf_counter() - self.start)
            self.bar.set_postfix(ppl=f"{train_ppl:.1f}",
                                 tok_s=f"{tok_s:.0f}")

    def close(self):
        self.bar.close()


def save(run: Run, params: dict, extra: dict, path: str):
    """Write ``params`` with the run's settings and state to ``path``; a failed write (disk full,
    folder gone) becomes one sentence, the file there before left as it was.

    Args: params, the LM's arrays (lstm_memory.PARAM_SHAPES); extra, more arrays by name ({"h": (B, H),
    "c": (B, H)} in <out>.last.npz, none in --out).
    """
    meta = {"format": FORMAT, "settings": {k: getattr(run.settings, k) for k in MODEL_SETTINGS},
            "split": "by document, within each genre in file order: 4 mod 10 valid, "
                     "5 mod 10 test, else train (files named *-train*, *-dev*, *-test*: whole)",
            "train": run.state, "machine": run.machine, "corpus_digest": run.corpus_digest}
    try:
        checkpoints.save_checkpoint(path, params, run.vocab, meta, extra)
    except OSError as error:
        raise TrainingError(f"could not write {path} ({error.strerror or error}): "
                            f"{what_is_left(run)}") from None


def save_last(run: Run):
    """Write the resumable state: weights, RNG, carried h and c, position in the epoch."""
    run.state["rng"] = run.rng.bit_generator.state
    save(run, run.params, {"h": run.h, "c": run.c}, last_path(run.settings.out))
    run.last_saved = True


def what_is_left(run: Run) -> str:
    """Where the last good state is, and how to go on from it."""
    last = last_path(run.settings.out)
    if run.last_saved and os.path.isfile(last):
        return (f"{last} holds the last good state; fix the cause and continue with "
                f"python train.py --resume --out {run.settings.out}")
    return "no resumable state is left; fix the cause and start again"


def diverged(run: Run, epoch: int, window: int) -> str:
    """The message for a non-finite loss or gradient, naming the last good state if there is one."""
    last = last_path(run.settings.out)
    kept = (f"the last good state is in {last}" if run.last_saved and os.path.isfile(last)
            else "no resumable state was saved yet")
    return (f"non-finite loss or gradient at epoch {epoch + 1}, window {window}: training "
            f"stopped; {kept} (try a lower --lr)")


NUMBER = (int, float)
TRAIN_STATE = {  # the training state in a checkpoint's metadata: field -> the JSON types it may have
    "epoch": int, "window": int, "rng": (dict, type(None)), "history": list,
    "best_valid_ppl": (*NUMBER, type(None)), "loss_sum": NUMBER, "tokens": int, "finished": bool,
    "train_seconds": NUMBER}


def load_resumable(path: str, args, parser):
    """(params, vocab, meta, extra) of ``path``, checked: a train.py checkpoint with its training
    state and settings (``check_saved_settings``)."""
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path} does not exist: there is nothing to --resume "
                              "(run without --resume to start, or check --out)")
    checkpoint = checkpoints.load_checkpoint(path, required=("format", "settings", "train"))
    meta = checkpoint[2]
    if meta["format"] != FORMAT:
        raise CheckpointError(f"{path} has format {meta['format']!r}, not {FORMAT!r}: it was "
                              "not written by this train.py")
    missing = [key for key in TRAIN_STATE if key not in meta["train"]]
    if missing:
        raise CheckpointError(f"{path} lacks the training state {', '.join(missing)}: "
                              "it was not written by this train.py")
    wrong = [key for key, kinds in TRAIN_STATE.items() if not isinstance(meta["train"][key], kinds)
             or (kinds is int and isinstance(meta["train"][key], bool))]
    if wrong:
        raise CheckpointError(f"{path} holds a training state {wrong[0]} of the wrong "
                              f"type ({meta['train'][wrong[0]]!r:.40}): it was not "
                              "written by this train.py")
    check_saved_settings(path, meta["settings"], args, parser)
    return checkpoint


def check_saved_settings(path: str, saved: dict, args, parser):
    """Refuse saved settings that are missing (corpus options have defaults) or not of their
    option's type (``parser``: train.py's), and options given on the command line with another
    value (--epochs aside)."""
    for key in MODEL_SETTINGS:
        option, default = "--" + key.replace("_", "-"), parser.get_default(key)
        if key not in saved and key not in SAVED_DEFAULTS:
            raise CheckpointError(f"{path} lacks the setting {option}: it was not written by "
                                  "this train.py")
        value = saved.get(key, SAVED_DEFAULTS.get(key))
        kinds = {bool: bool, int: int, str: str}.get(type(default), (int, float))
        if not (isinstance(value, kinds) or (default is None and value is None)):
            raise CheckpointError(f"{path} holds {option} {value!r}, not a value of that "
                                  "option: it was not written by this train.py")
        checkpoints.check_setting_values(path, {key: value}, parser, [key])
        if key != "epochs" and key in args.given and getattr(args, key) != value:
            raise CheckpointError(f"{option} {getattr(args, key)} contradicts {path}, which "
                                  f"was trained with {option} {value}: leave {option} out to "
                                  "resume that run, or give another --out to start a new one")


def resumed_run(checkpoint, settings, data, xp) -> Run:
    """The run saved in ``checkpoint``, on ``xp``, checked against its settings and the corpus.

    Args: checkpoint, (params, vocab, meta, extra) of ``load_resumable``, extra holding h and c
    (B, H); settings, of ``run_settings``; data, the corpus.Corpus; xp, numpy or cupy.
    """
    path = last_path(settings.out)
    params, vocab, meta, extra = checkpoint
    checkpoints.check_vocab(path, vocab, data.vocab)
    B, E, H = settings.batch_size, settings.embedding_size, settings.hidden_size
    arrays = {**params, **extra}
    G = cells.CELLS[settings.cell].gates
    expected = {"embedding": (len(vocab), E), "W_h": (G * H, H), "h": (B, H), "c": (B, H)}
    for name, shape in expected.items():
        found = arrays[name].shape if name in arrays else "missing"
        if found != shape:
            raise CheckpointError(f"{path} does not fit its own settings: {name} is {found}, "
                                  f"expected {shape}")
    state = meta["train"]
    rng = np.random.default_rng(settings.seed)
    try:
        if state["rng"] is not None:
            rng.bit_generator.state = state["rng"]
        position = f"epoch {int(state['epoch']) + 1}, window {int(state['window'])}"
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{path} has an unusable training state ({error})") from None
    print(f"resuming {path}: {position}", file=sys.stderr)
    dtype = np.dtype(settings.dtype)
    return Run(settings, {k: xp.asarray(v, dtype=dtype) for k, v in params.items()}, data.vocab,
               state, rng, xp.asarray(extra["h"], dtype=dtype), xp.asarray(extra["c"], dtype=dtype),
               machine_name(xp), last_saved=True)


def start(args, parser, xp) -> tuple:
    """Everything before the first SGD step, each check before any long work: --out writable,
    <out>.last.npz read and checked on --resume, the corpus read and long enough, the run new
    (initial weights; CBOW embeddings first for --embeddings cbow) or resumed.

    Args: args, of train.parse_args; parser, train.py's (its defaults check saved settings);
    xp, numpy or cupy. Returns (run, data): the Run and the corpus.Corpus.
    """
    prepare_output(args.out)
    check_no_run_there(args)
    checkpoint = load_resumable(last_path(args.out), args, parser) if args.resume else None
    settings = run_settings(args, checkpoint[2]["settings"] if checkpoint else None)
    data = load_corpus(**corpus_settings(vars(settings)))
    check_corpus_length(data, settings)
    run = (resumed_run(checkpoint, settings, data, xp) if checkpoint
           else new_run(settings, data, xp))
    run.corpus_digest = corpus_digest(data)
    if run.state["finished"] and run.state["epoch"] < settings.epochs and "epochs" in args.given:
        run.state["finished"] = False          # --epochs asks for more: on from the last epoch
    if run.state["finished"]:
        print(f"{last_path(settings.out)} has already finished training ({run.state['epoch']} "
              "epochs): give a larger --epochs to train it longer", file=sys.stderr)
    return run, data


def load_best(run: Run) -> dict:
    """The best model so far, read back from --out, on the run's device and dtype."""
    xp = lstm_memory.get_array_module(run.h)
    params = checkpoints.load_checkpoint(run.settings.out)[0]
    return {k: xp.asarray(v, dtype=run.settings.dtype) for k, v in params.items()}


def finish(run: Run, best_params: dict):
    """The run's end: its summary printed, the finished state saved in both checkpoints."""
    state, settings = run.state, run.settings
    state["finished"] = True
    print(f"best valid ppl {state['best_valid_ppl']:.2f}, test ppl {state['test_ppl']:.2f} "
          f"({state['train_seconds'] / 60:.1f} min of training on {run.machine})", file=sys.stderr)
    if settings.corpus == "synthetic":
        distance = (settings.max_distance, settings.fixed_distance)
        print(f"the planted language's perplexity: at best "
              f"{planted_perplexity(*distance):.2f}, without the noun's number at the "
              f"verb {planted_perplexity(*distance, False):.2f}", file=sys.stderr)
    save(run, best_params, {}, settings.out)
    save_last(run)


def stop_message(valid_ppl: float, best: float, min_improvement: float) -> str:
    """Why early stopping (--min-improvement) ends the run after this epoch."""
    if valid_ppl >= best:
        return (f"validation perplexity {valid_ppl:.2f} is no better than the best so far, "
                f"{best:.2f}: stopping (--min-improvement {min_improvement:g})")
    return (f"validation perplexity improved by {(best - valid_ppl) / best:.2%}, less than "
            f"--min-improvement {min_improvement:.2%}: stopping")
