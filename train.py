"""Train the hand-written LSTM language model (manual BPTT, SGD) with the paper's set-up.

    python train.py                                  # joint embeddings, Brown, paper's schedule
    python train.py --embeddings cbow --out checkpoints/cbow.npz
    python train.py --max-train-tokens 200000 --epochs 2 --out /tmp/quick.npz
    python train.py --corpus synthetic --out checkpoints/synthetic.npz      # planted memory
    python train.py --corpus ud/en_ewt/ --out checkpoints/ewt.npz           # your CoNLL-U files

Writes ``--out`` (the best model by validation perplexity) and ``<out>.last.npz`` (everything
needed to ``--resume``: weights, carried state, RNG state, position in the epoch). Ctrl-C saves
and exits with status 130; a non-finite loss or a failed save stops with status 1 and the last
good checkpoint left in place.

Reading order: the command line, word2vec CBOW, the SGD step, then ``train``, its loop
``train_epochs`` and the ends of an epoch and of the run; saving, the run's start (checks,
settings) and resuming come last.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
from tqdm import tqdm

import checkpointing
from checkpointing import CheckpointError
import corpus
import languages
import lstm_memory

FORMAT = "lstm-memory-lm/1"
MAX_EPOCHS = 39      # the authors' configuration
# settings that define the model and its data: fixed at the start, restored by --resume
MODEL_SETTINGS = ("epochs", "corpus", "vocab_size", "max_train_tokens", *corpus.CORPUS_OPTIONS,
                  "embedding_size", "hidden_size", "embeddings", "seed", "batch_size", "num_steps",
                  "dropout", "lr", "lr_decay", "decay_after", "max_grad_norm", "init_scale",
                  "min_improvement", "dtype", "cbow_window", "cbow_negative", "cbow_sample",
                  "cbow_min_count", "cbow_epochs", "cbow_lr")
EXIT_STATUS = ("exit status: 0 trained, or stopped by --stop-after; 1 error (one line on stderr); "
               "2 usage; 130 Ctrl-C, after saving the resumable state")


def checked(kind, allowed: str, test):
    """An argparse ``type``: ``kind(text)`` if ``test`` holds, else an error naming ``allowed``."""
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, not {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {allowed}, not {text}")
        return value
    return convert


COUNT = checked(int, "an integer >= 1", lambda n: n >= 1)
NATURAL = checked(int, "an integer >= 0", lambda n: n >= 0)
POSITIVE = checked(float, "a number > 0", lambda x: 0 < x < math.inf)
NONNEGATIVE = checked(float, "a number >= 0", lambda x: 0 <= x < math.inf)
BELOW_ONE = checked(float, "in [0, 1)", lambda x: 0 <= x < 1)
DECAY = checked(float, "in (0, 1]", lambda x: 0 < x <= 1)


def corpus_name(text: str) -> str:
    """A built-in corpus, or the user's file or folder as an absolute path (found from anywhere)."""
    return text if text in corpus.CORPORA else os.path.abspath(text)


def build_parser() -> argparse.ArgumentParser:
    """The options: data, model and optimisation (the paper's values), word2vec CBOW, the run."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=EXIT_STATUS,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--corpus", default="brown", type=corpus_name, metavar="NAME_OR_PATH",
                      help="brown or treebank (read through NLTK), synthetic (planted memory), "
                           "generated (the tests' toy language), or a file or folder of your own "
                           "CoNLL-U or word/TAG text")
    data.add_argument("--max-distance", type=COUNT, default=15,
                      help="synthetic: D, the verb agrees with a noun 1..D words back")
    data.add_argument("--fixed-distance", action="store_true",
                      help="synthetic: every verb exactly --max-distance words after its noun")
    data.add_argument("--tag-column", default="upos", choices=("upos", "xpos"),
                      help="CoNLL-U: the tag column to read")
    data.add_argument("--vocab-size", type=COUNT, default=10000,
                      help="most frequent words kept (+ <unk>)")
    data.add_argument("--max-train-tokens", type=COUNT, default=None,
                      help="train on the first N training tokens only (quick runs)")
    model = p.add_argument_group("model (the paper's values)")
    model.add_argument("--embedding-size", type=COUNT, default=64, help="E")
    model.add_argument("--hidden-size", type=COUNT, default=256,
                       help="H, LSTM cells in the one layer")
    model.add_argument("--embeddings", default="joint", choices=("joint", "cbow"),
                       help="joint: trained with the LM; cbow: word2vec CBOW, trained first, frozen")
    model.add_argument("--dropout", type=BELOW_ONE, default=0.5,
                       help="dropout on the LSTM output only")
    model.add_argument("--init-scale", type=POSITIVE, default=0.05, help="weights ~ U(-s, s)")
    opt = p.add_argument_group("optimisation (the paper's values)")
    opt.add_argument("--batch-size", type=COUNT, default=20, help="B parallel streams")
    opt.add_argument("--num-steps", type=COUNT, default=50, help="T steps of truncated BPTT")
    opt.add_argument("--lr", type=POSITIVE, default=1.0, help="SGD learning rate")
    opt.add_argument("--decay-after", type=NATURAL, default=6,
                     help="epochs at the full learning rate")
    opt.add_argument("--lr-decay", type=DECAY, default=0.8, help="factor per epoch after that")
    opt.add_argument("--max-grad-norm", type=POSITIVE, default=5.0,
                     help="global gradient-norm clip")
    opt.add_argument("--epochs", type=COUNT, default=None,
                     help=f"at most this many epochs ({MAX_EPOCHS}, the authors' setting; --resume "
                          "keeps the interrupted run's value unless this is given)")
    opt.add_argument("--min-improvement", type=BELOW_ONE, default=None,
                     help="early stopping (off by default, as in the authors' configuration): after "
                          "the first --decay-after epochs, stop when an epoch lowers validation "
                          "perplexity by less than this fraction of the best so far (0: stop once "
                          "it no longer improves)")
    w2v = p.add_argument_group("word2vec CBOW (--embeddings cbow; word2vec's defaults)")
    w2v.add_argument("--cbow-window", type=COUNT, default=5,
                     help="context words on each side, shrunk at random to 1..window")
    w2v.add_argument("--cbow-negative", type=COUNT, default=5, help="negative samples per word")
    w2v.add_argument("--cbow-sample", type=NONNEGATIVE, default=1e-3,
                     help="sub-sampling threshold of frequent words (0: off)")
    w2v.add_argument("--cbow-min-count", type=COUNT, default=5,
                     help="rarer words are skipped (and keep their initial vectors)")
    w2v.add_argument("--cbow-epochs", type=COUNT, default=5, help="passes over the training text")
    w2v.add_argument("--cbow-lr", type=POSITIVE, default=0.05,
                     help="decays linearly to 0 (word2vec's CBOW default; 0.025 is skip-gram's)")
    run = p.add_argument_group("run")
    run.add_argument("--out", default="checkpoints/joint.npz", help="best checkpoint (.npz)")
    run.add_argument("--resume", action="store_true",
                     help="continue from <out>.last.npz with its settings; a data, model or "
                          "optimisation option given as well must have the checkpoint's value "
                          "(--epochs may raise the number of epochs)")
    run.add_argument("--seed", type=NATURAL, default=0,
                     help="initial weights, dropout masks, CBOW, the generated languages")
    run.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"),
                     help="auto: CuPy when it sees a GPU, else NumPy")
    run.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                     help="of the weights and the training arithmetic")
    run.add_argument("--save-every", type=COUNT, default=200,
                     help="windows between saves of the resumable state")
    run.add_argument("--stop-after", type=COUNT, default=None,
                     help="stop after N windows in this run, saving the resumable state as Ctrl-C "
                          "does, but with exit status 0: a planned stop")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """The command line; ``given`` names the options typed on it (the rest are defaults)."""
    p = build_parser()
    args = p.parse_args(argv)
    if args.fixed_distance and args.corpus != "synthetic":
        p.error("--fixed-distance is an option of --corpus synthetic")
    if args.max_train_tokens is not None and args.max_train_tokens < 2 * args.batch_size:
        p.error("--max-train-tokens is too small for --batch-size streams")
    unset = object()                    # parsed again onto "unset": what stays unset was not typed
    typed = p.parse_args(argv, argparse.Namespace(**dict.fromkeys(vars(args), unset)))
    return argparse.Namespace(**vars(args),
                              given=frozenset(k for k, v in vars(typed).items() if v is not unset))


def last_path(out: str) -> str:
    """The resumable state beside the best checkpoint: runs/joint.npz -> runs/joint.last.npz."""
    root, _ = os.path.splitext(out)
    return root + ".last.npz"


def perplexity(mean_loss: float) -> float:
    """exp(mean cross-entropy), saturating at exp(700) instead of overflowing."""
    return math.exp(min(mean_loss, 700.0))


def machine_name(xp) -> str:
    """'NVIDIA H100 ...' on a GPU, else the CPU model and its number of cores."""
    if xp is not np:  # pragma: no cover - GPU only
        return xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores"


# ----------------------------------------------------------------------------------------------
# word2vec CBOW embeddings (the paper's second LM)
# ----------------------------------------------------------------------------------------------

def cbow_step(W_in, W_out, contexts, context_mask, centers, negatives, rate):
    """One word2vec.c CBOW update of a batch of windows, in place; returns the batch's loss.

    As word2vec.c (cbow_mean = 1): h = mean of the context vectors, the error
    neu1e = -rate * dL/dh is added undivided to the vector of every context word, and
    W_out[target] -= rate * dL/dW_out[target]; both use W_out from before the update.

    Args: W_in, W_out (V, E), updated in place; contexts, context_mask (N, 2w); centers (N,);
    negatives (N, k); rate: the learning rate of this batch.
    """
    h = lstm_memory.context_mean(W_in, contexts, context_mask)                       # (N, E)
    loss, dh, dW_out = lstm_memory.cbow_loss_and_grads(h, W_out, centers, negatives)
    words = contexts.reshape(-1)[context_mask.reshape(-1) > 0]              # (M,) real context words
    xp = lstm_memory.get_array_module(dh)
    errors = xp.repeat(-rate * dh, contexts.shape[1], axis=0)                 # (N * 2w, E)
    lstm_memory.scatter_add_rows(W_in, words, errors[context_mask.reshape(-1) > 0])  # neu1e, undivided
    W_out -= rate * dW_out
    return loss


def train_cbow(ids, V: int, E: int, eos_id=None, window=5, negative=5, sample=1e-3, min_count=5,
               epochs=5, lr=0.05, seed=0, batch_size=128, progress=True, xp=np):
    """word2vec CBOW with negative sampling at word2vec.c's defaults, minibatched.

    As in word2vec.c: words rarer than ``min_count`` are skipped (they keep their initial vectors);
    a window never crosses a sentence end: ``eos_id`` (word2vec's ``</s>``) ends the sentence and is
    itself never a centre or a context word (it keeps its initial vector U(-0.5/E, 0.5/E));
    frequent words are sub-sampled (keep probability (sqrt(f / (s N)) + 1) s N / f, N the words
    read, ``</s>`` included); the window is shrunk at random to 1..window; negatives are drawn from
    the unigram distribution to the 3/4; the learning rate (0.05, CBOW's default) falls linearly
    to 0 over the words read in all epochs; the update rule is ``cbow_step``. Unlike word2vec.c,
    ``batch_size`` centres are updated at once (their gradients summed), as its threads do without
    locks.

    Returns W_in (V, E), the embeddings, on ``xp``, and the loss per epoch (list of floats).
    """
    rng = np.random.default_rng(seed)
    stream, sentence, keep_prob, noise = cbow_text(ids, V, eos_id, sample, min_count)
    total = stream.size
    W_in = xp.asarray(rng.uniform(-0.5 / E, 0.5 / E, (V, E)))        # (V, E)
    W_out = xp.zeros((V, E))                                           # (V, E)
    offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])   # (2w,)
    losses = []
    for epoch in range(epochs):
        kept = np.flatnonzero(rng.random(total) < keep_prob[stream])  # positions that survive
        words, sentences = stream[kept], sentence[kept]                # sub-sampled text (n,)
        n = words.size
        loss_sum = 0.0
        bar = tqdm(range(0, n, batch_size), desc=f"cbow epoch {epoch + 1}/{epochs}",
                   disable=not progress, leave=False)
        for start in bar:
            centers = np.arange(start, min(start + batch_size, n))     # (N,) positions
            reach = window - rng.integers(0, window, centers.size)     # (N,) shrunk window
            positions = np.clip(centers[:, None] + offsets, 0, n - 1)  # (N, 2w)
            mask = ((np.abs(offsets) <= reach[:, None])
                    & (centers[:, None] + offsets >= 0) & (centers[:, None] + offsets < n)
                    & (sentences[positions] == sentences[centers][:, None]))   # same sentence
            has_context = mask.any(axis=1)                             # word2vec skips cw = 0
            centers, positions, mask = centers[has_context], positions[has_context], mask[has_context]
            if centers.size == 0:
                continue
            negatives = rng.choice(V, size=(centers.size, negative), p=noise)
            done = (epoch * total + kept[centers[0]]) / (epochs * total)  # words read, as word2vec
            rate = lr * max(1e-4, 1.0 - done)
            loss_sum += cbow_step(W_in, W_out, xp.asarray(words[positions]),
                                  xp.asarray(mask, dtype=W_in.dtype), xp.asarray(words[centers]),
                                  xp.asarray(negatives), rate)
        losses.append(loss_sum / max(n, 1))
        print(f"cbow epoch {epoch + 1}: loss per word {losses[-1]:.4f}", file=sys.stderr)
    return W_in, losses


def cbow_text(ids, V: int, eos_id, sample: float, min_count: int):
    """What word2vec.c reads of ``ids`` (N0,) and how it samples it (``train_cbow``'s rules).

    Returns the words read (N,), their sentence numbers (N,), each word type's keep probability
    under sub-sampling (V,), and the noise distribution of the negatives (V,).
    """
    counts = np.bincount(ids, minlength=V).astype(np.float64)
    in_vocab = counts >= min_count
    if eos_id is not None:
        in_vocab[eos_id] = True
    stream = ids[in_vocab[ids]]                    # the words word2vec reads (N,)
    total = stream.size
    sentence = (np.cumsum(stream == eos_id) if eos_id is not None   # sentence number per word (N,)
                else np.zeros(total, dtype=np.int64))
    keep_prob = (np.minimum(1.0, (np.sqrt(counts / (sample * total)) + 1) * sample * total
                            / np.maximum(counts, 1)) if sample > 0 else np.ones(V))   # 0: off
    if eos_id is not None:
        keep_prob[eos_id] = 0.0                    # </s> ends a sentence; it is never trained
    noise = np.where(in_vocab, counts, 0.0) ** 0.75
    if eos_id is not None:
        noise[eos_id] = 0.0
    if noise.sum() == 0:
        raise ValueError(f"no word of the training text occurs --cbow-min-count {min_count} times: "
                         "lower --cbow-min-count or give more text")
    noise /= noise.sum()
    return stream, sentence, keep_prob, noise


def nearest_neighbours(embeddings, vocab, words, k=5):
    """The k nearest words by cosine for each of ``words`` that is in the vocabulary."""
    emb = lstm_memory.to_numpy(embeddings)
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    index = {w: i for i, w in enumerate(vocab)}
    result = {}
    for w in words:
        if w in index:
            sims = unit @ unit[index[w]]
            order = [j for j in np.argsort(-sims) if j != index[w]][:k]
            result[w] = [vocab[j] for j in order]
    return result


# ----------------------------------------------------------------------------------------------
# Language-model training
# ----------------------------------------------------------------------------------------------

def evaluate(params, ids, batch_size, num_steps, workers=1):
    """Perplexity of ``ids`` (no dropout, state carried across windows).

    Args: params, the LM's arrays (lstm_memory.PARAM_SHAPES); ids (N,) word ids; batch_size B streams;
    num_steps T steps per window; workers, threads that share the streams.
    """
    xp = lstm_memory.get_array_module(params["W_h"])
    streams = corpus.batchify(ids, batch_size)                           # (B, N // B)
    H = params["W_h"].shape[1]
    h = xp.zeros((batch_size, H), dtype=params["W_h"].dtype)            # (B, H)
    c = xp.zeros_like(h)
    total, count = 0.0, 0
    for start in range(0, streams.shape[1] - 1, num_steps):
        stop = min(start + num_steps, streams.shape[1] - 1)
        inputs = xp.asarray(streams[:, start:stop])
        targets = xp.asarray(streams[:, start + 1:stop + 1])
        loss, _, (h, c) = lstm_memory.lm_loss_and_grads(params, inputs, targets, h, c, backward=False,
                                                        workers=workers)
        total += loss * inputs.size
        count += inputs.size
    return perplexity(total / count)


def blas_threads() -> int:
    """The threads of the BLAS library (OPENBLAS_NUM_THREADS and the like): as many workers
    share the streams of a window (lstm_memory.lm_loss_and_grads)."""
    return max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"),
               default=1)


def clip_factor(grads, max_norm):
    """(||g||, min(1, max_norm / ||g||)): the global norm over all gradients and the factor that
    clips it to ``max_norm``."""
    norm = math.sqrt(sum(float(g.ravel() @ g.ravel()) for g in grads.values()))
    return norm, (max_norm / norm if norm > max_norm else 1.0)


def sgd_step(params, grads, trainable, lr, num_steps, max_norm):
    """One SGD step on the paper's cost; returns the gradient norm before clipping.

    The paper's (and its authors' TensorFlow) cost is summed over the T = ``num_steps`` steps and
    averaged over the B streams: T times the per-token mean that ``lm_loss_and_grads`` returns,
    so its gradient is T times ours. "lr 1, clip at 5" refer to that cost:
        g = T grad,   params -= lr min(1, 5 / ||g||) g
    (T, the clipping and lr are one factor, applied in place: ``grads`` are this step's own).
    """
    grads = {k: grads[k] for k in trainable}
    norm, clip = clip_factor(grads, max_norm / num_steps)    # ||g|| / T, and the clip of g
    if math.isfinite(norm):
        for k in trainable:
            grads[k] *= lr * num_steps * clip
            params[k] -= grads[k]
    return norm * num_steps


def learning_rate(settings, epoch: int) -> float:
    """lr for 0-based ``epoch``: settings.lr for decay_after epochs, then x lr_decay per epoch."""
    return settings.lr * settings.lr_decay ** max(0, epoch + 1 - settings.decay_after)


class Interrupt:
    """Turns Ctrl-C into a flag that the loop checks between windows, so a save is never torn."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:          # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: saving after this window ...", file=sys.stderr)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)


class Stopped(Exception):
    """Ctrl-C during training: the resumable state is saved, the run ends with status 130."""


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
    h: object                      # (B, H) LSTM output, carried across windows
    c: object                      # (B, H) LSTM cell state
    machine: str
    last_saved: bool = False       # whether <out>.last.npz holds this run's state
    workers: int = 1               # threads that share the streams (lm_loss_and_grads)


def train(args) -> dict:
    """Train (or resume) one LM; returns the training state (history, perplexities).

    Args: args, the command line of ``parse_args``. Raises Stopped after Ctrl-C (state saved).
    """
    xp = lstm_memory.get_backend(args.device)
    prepare_output(args.out)
    checkpoint = load_resumable(last_path(args.out), args) if args.resume else None
    settings = run_settings(args, checkpoint[2]["settings"] if checkpoint else None)
    data = corpus.load_corpus(**corpus.corpus_settings(vars(settings)))
    check_corpus_length(data, settings)
    run = (resumed_run(checkpoint, settings, data, xp) if checkpoint
           else new_run(settings, data, xp))
    if run.state["finished"] and run.state["epoch"] < settings.epochs and "epochs" in args.given:
        run.state["finished"] = False          # --epochs asks for more: on from the last epoch
    if run.state["finished"]:
        print(f"{last_path(settings.out)} has already finished training ({run.state['epoch']} "
              "epochs): give a larger --epochs to train it longer", file=sys.stderr)
        return run.state
    run.workers = blas_threads()
    # BLAS on one thread throughout, the streams split among run.workers threads
    # (lm_loss_and_grads): an idle BLAS thread spins for a while after each product and would
    # take a core from them
    with Interrupt() as interrupt, threadpool_limits(limits=1, user_api="blas"):
        stopped = train_epochs(run, data, interrupt)
    if stopped:
        message = f"stopped; resume with: python train.py --resume --out {settings.out}"
        if interrupt.requested:
            raise Stopped(message)
        print(message, file=sys.stderr)
        return run.state
    return finish(run, data)


def train_epochs(run: Run, data, interrupt: Interrupt) -> bool:
    """SGD over the epochs and windows still to do; True if stopped early (Ctrl-C, --stop-after).

    Args: run, updated in place; data, the corpus.Corpus; interrupt, the Ctrl-C flag.
    """
    settings, state = run.settings, run.state
    xp = lstm_memory.get_array_module(run.h)
    streams = corpus.batchify(data.ids["train"], settings.batch_size)              # (B, N)
    n_windows = math.ceil((streams.shape[1] - 1) / settings.num_steps)
    trainable = [k for k in run.params if not (k == "embedding" and settings.embeddings == "cbow")]
    windows_this_run = 0
    while state["epoch"] < settings.epochs:
        epoch, lr = state["epoch"], learning_rate(settings, state["epoch"])
        progress = EpochProgress(run, n_windows, lr)
        clock = time.perf_counter()
        for window in range(state["window"], n_windows):
            start = window * settings.num_steps
            stop = min(start + settings.num_steps, streams.shape[1] - 1)
            inputs = xp.asarray(streams[:, start:stop])                       # (B, T)
            targets = xp.asarray(streams[:, start + 1:stop + 1])              # (B, T)
            keep = (run.rng.random((settings.batch_size, stop - start, settings.hidden_size))
                    >= settings.dropout)                                       # (B, T, H)
            mask = xp.asarray(keep / (1.0 - settings.dropout), dtype=settings.dtype)  # (B, T, H)
            loss, grads, (h, c) = lstm_memory.lm_loss_and_grads(run.params, inputs, targets,
                                                                run.h, run.c, mask,
                                                                workers=run.workers)
            norm = (sgd_step(run.params, grads, trainable, lr, inputs.shape[1],
                             settings.max_grad_norm)
                    if math.isfinite(loss) else math.nan)          # no step on a bad loss
            if not math.isfinite(norm):
                raise FloatingPointError(diverged(run, epoch, window))
            run.h, run.c = h, c
            state["window"] = window + 1
            state["loss_sum"] += loss * inputs.size
            state["tokens"] += int(inputs.size)
            windows_this_run += 1
            progress.update(state, int(inputs.size))
            stop_now = interrupt.requested or windows_this_run == settings.stop_after
            if stop_now or state["window"] % settings.save_every == 0:
                state["train_seconds"] += time.perf_counter() - clock
                clock = time.perf_counter()
                save_last(run)
            if stop_now:
                progress.close()
                return True
        progress.close()
        state["train_seconds"] += time.perf_counter() - clock
        if not end_epoch(run, data, epoch, lr):
            return False
        save_last(run)
    return False


class EpochProgress:
    """The progress bar of one epoch: windows, running training perplexity, tokens per second."""

    def __init__(self, run: Run, n_windows: int, lr: float):
        self.bar = tqdm(total=n_windows, initial=run.state["window"],
                        disable=run.settings.no_progress, unit="win",
                        desc=f"epoch {run.state['epoch'] + 1}/{run.settings.epochs} lr {lr:.3g}")
        self.start, self.tokens, self.windows = time.perf_counter(), 0, 0

    def update(self, state: dict, tokens: int):
        """One window of ``tokens`` (B x T) done; ``state``: the run's, for the perplexity."""
        self.bar.update(1)
        self.tokens += tokens
        self.windows += 1
        if self.windows % 10 == 0:
            tok_s = self.tokens / (time.perf_counter() - self.start)
            self.bar.set_postfix(ppl=f"{perplexity(state['loss_sum'] / state['tokens']):.1f}",
                                 tok_s=f"{tok_s:.0f}")

    def close(self):
        self.bar.close()


def end_epoch(run: Run, data, epoch: int, lr: float) -> bool:
    """Validation perplexity, the best checkpoint, the next epoch's start; False to stop early.

    Args: run, updated in place; data, the corpus.Corpus; epoch, 0-based; lr, the epoch's rate.
    """
    settings, state = run.settings, run.state
    valid_ppl = evaluate(run.params, data.ids["valid"], settings.batch_size, settings.num_steps,
                         run.workers)
    train_ppl = perplexity(state["loss_sum"] / max(state["tokens"], 1))
    state["history"].append({"epoch": epoch + 1, "lr": lr, "train_ppl": train_ppl,
                             "valid_ppl": valid_ppl})
    print(f"epoch {epoch + 1}: lr {lr:.4g}  train ppl {train_ppl:.2f}  valid ppl {valid_ppl:.2f}",
          file=sys.stderr)
    best = state["best_valid_ppl"]
    # no stopping while the learning rate is still at its start: the decay brings the gains
    improved = (settings.min_improvement is None or best is None or epoch + 1 <= settings.decay_after
                or valid_ppl < best * (1.0 - settings.min_improvement))
    if best is None or valid_ppl < best:
        state["best_valid_ppl"] = valid_ppl
        save(run, run.params, {}, settings.out)
    state.update(epoch=epoch + 1, window=0, loss_sum=0.0, tokens=0)
    xp = lstm_memory.get_array_module(run.h)
    run.h, run.c = xp.zeros_like(run.h), xp.zeros_like(run.c)   # each epoch reads the text anew
    if not improved:
        print(f"validation perplexity improved by less than {settings.min_improvement:.1%}: stopping",
              file=sys.stderr)
    return improved


def finish(run: Run, data) -> dict:
    """Test perplexity of the best model (read back from --out), recorded in both checkpoints;
    returns the state. Args: run, after its last epoch; data, the corpus.Corpus."""
    settings, state = run.settings, run.state
    xp = lstm_memory.get_array_module(run.h)
    best_params = checkpointing.load_checkpoint(settings.out)[0]
    best_params = {k: xp.asarray(v, dtype=settings.dtype) for k, v in best_params.items()}
    state["test_ppl"] = evaluate(best_params, data.ids["test"], settings.batch_size, settings.num_steps,
                                 run.workers)
    state["finished"] = True
    print(f"best valid ppl {state['best_valid_ppl']:.2f}, test ppl {state['test_ppl']:.2f} "
          f"({state['train_seconds'] / 60:.1f} min of training on {run.machine})", file=sys.stderr)
    if settings.corpus == "synthetic":
        distance = (settings.max_distance, settings.fixed_distance)
        print(f"the planted language's perplexity: at best "
              f"{languages.planted_perplexity(*distance):.2f}, without the noun's number at the "
              f"verb {languages.planted_perplexity(*distance, False):.2f}", file=sys.stderr)
    save(run, best_params, {}, settings.out)
    save_last(run)
    return state


# ----------------------------------------------------------------------------------------------
# Saving: the best checkpoint and the resumable state, and what is left when a save fails
# ----------------------------------------------------------------------------------------------

def save(run: Run, params: dict, extra: dict, path: str):
    """Write ``params`` with the run's settings and state to ``path``; a failed write (disk full,
    folder gone) becomes one sentence, the file there before left as it was.

    Args: params, the LM's arrays (lstm_memory.PARAM_SHAPES); extra, more arrays by name ({"h": (B, H),
    "c": (B, H)} in <out>.last.npz, none in --out).
    """
    meta = {"format": FORMAT, "settings": {k: getattr(run.settings, k) for k in MODEL_SETTINGS},
            "split": "by document, within each genre in file order: 4 mod 10 valid, "
                     "5 mod 10 test, else train (files named *-train*, *-dev*, *-test*: whole)",
            "train": run.state, "machine": run.machine}
    try:
        checkpointing.save_checkpoint(path, params, run.vocab, meta, extra)
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


# ----------------------------------------------------------------------------------------------
# The run's start: checks before any long work, settings, a new run or a resumed one
# ----------------------------------------------------------------------------------------------

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
            checkpointing.remove_stale_temporaries(path)
        checkpointing.probe_folder(folder, checkpointing.temporary_prefix(out))
    except OSError as error:
        reason = f"{error.strerror}: {error.filename}" if error.filename else str(error)
        raise TrainingError(f"--out {out} cannot be written ({reason}): choose a folder you can "
                            "write to") from None


def run_settings(args, saved: dict | None = None) -> argparse.Namespace:
    """The run's settings: the command line's, or on --resume the checkpoint's ``saved`` ones
    (data, model, optimisation) with this command line's run options and, if given, --epochs."""
    settings = {**vars(args), "epochs": args.epochs or MAX_EPOCHS}
    if saved is not None:
        settings.update(saved, epochs=args.epochs or saved["epochs"])
    return argparse.Namespace(**settings)


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
                            seed=settings.seed, scale=settings.init_scale, dtype=dtype, xp=xp)
    state = {"epoch": 0, "window": 0, "rng": None, "history": [], "best_valid_ppl": None,
             "loss_sum": 0.0, "tokens": 0, "finished": False, "train_seconds": 0.0, "cbow": None}
    if settings.embeddings == "cbow":
        params["embedding"], state["cbow"] = cbow_embeddings(settings, data, xp)
    h = xp.zeros((settings.batch_size, settings.hidden_size), dtype=dtype)     # (B, H)
    return Run(settings, params, data.vocab, state, np.random.default_rng(settings.seed),
               h, xp.zeros_like(h), machine_name(xp))


def cbow_embeddings(settings, data, xp):
    """word2vec CBOW embeddings (V, E) for the frozen-embedding LM, in settings.dtype, and their
    record (losses, neighbours, printed); the float64 vectors also go to <out>.cbow.npy.

    Args: settings, of ``run_settings``; data, the corpus.Corpus; xp, numpy or cupy.
    """
    W_in, losses = train_cbow(data.ids["train"], len(data.vocab), settings.embedding_size,
                              eos_id=data.word_to_id.get(corpus.EOS),
                              window=settings.cbow_window, negative=settings.cbow_negative,
                              sample=settings.cbow_sample, min_count=settings.cbow_min_count,
                              epochs=settings.cbow_epochs, lr=settings.cbow_lr, seed=settings.seed,
                              progress=not settings.no_progress, xp=xp)         # (V, E)
    probes = ["man", "city", "said", "good", "he", "two", "war", "water"]
    record = {"loss_per_epoch": losses, "neighbours": nearest_neighbours(W_in, data.vocab, probes)}
    norms = np.linalg.norm(lstm_memory.to_numpy(W_in), axis=1)                            # (V,)
    index = data.word_to_id
    for word, near in record["neighbours"].items():
        listed = ", ".join(f"{w} ({norms[index[w]]:.2f})" for w in near)
        print(f"  cbow neighbours of {word!r} ({norms[index[word]]:.2f}): {listed}  "
              f"[vector norms in brackets]", file=sys.stderr)
    path = os.path.splitext(settings.out)[0] + ".cbow.npy"
    try:
        checkpointing.atomic_write(path, lambda handle: np.save(handle, lstm_memory.to_numpy(W_in)))
    except OSError as error:
        raise TrainingError(f"could not write {path} ({error.strerror or error}): free disk "
                            "space and start again") from None
    return W_in.astype(np.dtype(settings.dtype)), record


# ----------------------------------------------------------------------------------------------
# Resume: <out>.last.npz, checked against the command line and the corpus
# ----------------------------------------------------------------------------------------------

NUMBER = (int, float)
TRAIN_STATE = {  # the training state in a checkpoint's metadata: field -> the JSON types it may have
    "epoch": int, "window": int, "rng": (dict, type(None)), "history": list,
    "best_valid_ppl": (*NUMBER, type(None)), "loss_sum": NUMBER, "tokens": int, "finished": bool,
    "train_seconds": NUMBER}


def load_resumable(path: str, args):
    """(params, vocab, meta, extra) of ``path``, checked: a train.py checkpoint with its training
    state and settings (``check_saved_settings``)."""
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path} does not exist: there is nothing to --resume "
                              "(run without --resume to start, or check --out)")
    checkpoint = checkpointing.load_checkpoint(path, required=("format", "settings", "train"))
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
    check_saved_settings(path, meta["settings"], args)
    return checkpoint


def check_saved_settings(path: str, saved: dict, args):
    """Refuse saved settings that are missing (corpus options have defaults) or not of their
    option's type, and options given on the command line with another value (--epochs aside)."""
    parser = build_parser()
    for key in MODEL_SETTINGS:
        option, default = "--" + key.replace("_", "-"), parser.get_default(key)
        if key not in saved and key not in corpus.CORPUS_OPTIONS:
            raise CheckpointError(f"{path} lacks the setting {option}: it was not written by "
                                  "this train.py")
        value = saved.get(key, corpus.CORPUS_OPTIONS.get(key))
        kinds = {bool: bool, int: int, str: str}.get(type(default), (int, float))
        if not (isinstance(value, kinds) or (default is None and value is None)):
            raise CheckpointError(f"{path} holds {option} {value!r}, not a value of that "
                                  "option: it was not written by this train.py")
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
    checkpointing.check_vocab(path, vocab, data.vocab)
    B, E, H = settings.batch_size, settings.embedding_size, settings.hidden_size
    arrays = {**params, **extra}
    expected = {"embedding": (len(vocab), E), "W_h": (4 * H, H), "h": (B, H), "c": (B, H)}
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


def main(argv=None) -> int:
    """Run train.py; returns the exit status (EXIT_STATUS)."""
    args = parse_args(argv)
    try:
        state = train(args)
    except Stopped as stop:
        print(stop, file=sys.stderr)
        return 130
    except KeyboardInterrupt:     # outside the SGD loop (CBOW, evaluation), or a second Ctrl-C
        print("interrupted; the checkpoints written before are kept", file=sys.stderr)
        return 130
    except (TrainingError, CheckpointError, corpus.CorpusError, FloatingPointError,
            RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:      # reading the corpus: saves are handled where they happen
        print(f"error: {error.filename or 'a file'} cannot be read ({error.strerror or error})",
              file=sys.stderr)
        return 1
    if state.get("finished"):
        print(json.dumps({k: state[k] for k in ("best_valid_ppl", "test_ppl", "train_seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
