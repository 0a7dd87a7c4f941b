"""Train the hand-written LSTM language model (manual BPTT, SGD) with the paper's set-up.

    python train.py                                  # joint embeddings, Brown, paper's schedule
    python train.py --embeddings cbow --out checkpoints/cbow.npz
    python train.py --max-train-tokens 200000 --epochs 2 --out /tmp/quick.npz
    python train.py --corpus synthetic --out checkpoints/synthetic.npz      # planted memory
    python train.py --corpus ud/en_ewt/ --out checkpoints/ewt.npz           # your CoNLL-U files

Writes ``--out`` (the best model by validation perplexity) and ``<out>.last.npz`` (everything
needed to ``--resume``: weights, carried state, RNG state, position in the epoch). Ctrl-C saves
and exits cleanly; a non-finite loss stops with the last good checkpoint left in place.
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

import numpy as np
from tqdm import tqdm

import corpus as corpora
import lstm_memory as lm

FORMAT = "lstm-memory-lm/1"
# settings that define the model and its data: fixed at the start, restored by --resume
MAX_EPOCHS = 39      # the authors' configuration
MODEL_SETTINGS = ("epochs", "corpus", "vocab_size", "max_train_tokens", *corpora.CORPUS_OPTIONS,
                  "embedding_size", "hidden_size", "embeddings", "seed", "batch_size", "num_steps",
                  "dropout", "lr", "lr_decay", "decay_after", "max_grad_norm", "init_scale",
                  "min_improvement", "dtype", "cbow_window", "cbow_negative", "cbow_sample", "cbow_min_count",
                  "cbow_epochs", "cbow_lr")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--corpus", default="brown", metavar="NAME_OR_PATH",
                      help="brown or treebank (read through NLTK), synthetic (planted memory), "
                           "generated (the tests' toy language), or a file or folder of your own "
                           "CoNLL-U or word/TAG text")
    data.add_argument("--max-distance", type=int, default=15,
                      help="synthetic: D, the verb agrees with a noun 1..D words back")
    data.add_argument("--fixed-distance", action="store_true",
                      help="synthetic: every verb exactly --max-distance words after its noun")
    data.add_argument("--tag-column", default="upos", choices=("upos", "xpos"),
                      help="CoNLL-U: the tag column to read")
    data.add_argument("--vocab-size", type=int, default=10000, help="most frequent words kept (+ <unk>)")
    data.add_argument("--max-train-tokens", type=int, default=None,
                      help="train on the first N training tokens only (quick runs)")
    model = p.add_argument_group("model (the paper's values)")
    model.add_argument("--embedding-size", type=int, default=64, help="E")
    model.add_argument("--hidden-size", type=int, default=256, help="H, LSTM cells in the one layer")
    model.add_argument("--embeddings", default="joint", choices=("joint", "cbow"),
                       help="joint: trained with the LM; cbow: word2vec CBOW, trained first, frozen")
    model.add_argument("--dropout", type=float, default=0.5, help="dropout on the LSTM output only")
    model.add_argument("--init-scale", type=float, default=0.05, help="weights ~ U(-s, s)")
    opt = p.add_argument_group("optimisation (the paper's values)")
    opt.add_argument("--batch-size", type=int, default=20, help="B parallel streams")
    opt.add_argument("--num-steps", type=int, default=50, help="T steps of truncated BPTT")
    opt.add_argument("--lr", type=float, default=1.0, help="SGD learning rate")
    opt.add_argument("--decay-after", type=int, default=6, help="epochs at the full learning rate")
    opt.add_argument("--lr-decay", type=float, default=0.8, help="factor per epoch after that")
    opt.add_argument("--max-grad-norm", type=float, default=5.0, help="global gradient-norm clip")
    opt.add_argument("--epochs", type=int, default=None,
                     help=f"at most this many epochs ({MAX_EPOCHS}, the authors' setting; --resume "
                          "keeps the interrupted run's value unless this is given)")
    opt.add_argument("--min-improvement", type=float, default=None,
                     help="early stopping (off by default, as in the authors' configuration): after "
                          "the first --decay-after epochs, stop when an epoch lowers validation "
                          "perplexity by less than this fraction of the best so far (0: stop once "
                          "it no longer improves)")
    w2v = p.add_argument_group("word2vec CBOW (--embeddings cbow; word2vec's defaults)")
    w2v.add_argument("--cbow-window", type=int, default=5)
    w2v.add_argument("--cbow-negative", type=int, default=5)
    w2v.add_argument("--cbow-sample", type=float, default=1e-3)
    w2v.add_argument("--cbow-min-count", type=int, default=5)
    w2v.add_argument("--cbow-epochs", type=int, default=5)
    w2v.add_argument("--cbow-lr", type=float, default=0.05,
                     help="decays linearly to 0 (word2vec's CBOW default; 0.025 is skip-gram's)")
    run = p.add_argument_group("run")
    run.add_argument("--out", default="checkpoints/joint.npz", help="best checkpoint (.npz)")
    run.add_argument("--resume", action="store_true", help="continue from <out>.last.npz")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    run.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    run.add_argument("--save-every", type=int, default=200,
                     help="windows between saves of the resumable state")
    run.add_argument("--stop-after", type=int, default=None,
                     help="stop after N windows in this run, saving the resumable state (as Ctrl-C)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    for name in ("vocab_size", "embedding_size", "hidden_size", "batch_size", "num_steps", "epochs"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_distance < 1:
        p.error("--max-distance must be at least 1")
    if args.fixed_distance and args.corpus != "synthetic":
        p.error("--fixed-distance is an option of --corpus synthetic")
    if args.corpus not in corpora.CORPORA:          # the user's files: found from any directory
        args.corpus = os.path.abspath(args.corpus)
    if not 0.0 <= args.dropout < 1.0:
        p.error("--dropout must be in [0, 1)")
    if args.max_train_tokens is not None and args.max_train_tokens < 2 * args.batch_size:
        p.error("--max-train-tokens is too small for --batch-size streams")
    return args


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
    h = lm.context_mean(W_in, contexts, context_mask)                       # (N, E)
    loss, dh, dW_out = lm.cbow_loss_and_grads(h, W_out, centers, negatives)
    words = contexts.reshape(-1)[context_mask.reshape(-1) > 0]              # (M,) real context words
    errors = lm.get_array_module(dh).repeat(-rate * dh, contexts.shape[1], axis=0)   # (N * 2w, E)
    lm.scatter_add_rows(W_in, words, errors[context_mask.reshape(-1) > 0])  # neu1e, undivided
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
    counts = np.bincount(ids, minlength=V).astype(np.float64)
    in_vocab = counts >= min_count
    if eos_id is not None:
        in_vocab[eos_id] = True
    stream = ids[in_vocab[ids]]                    # the words word2vec reads (N,)
    total = stream.size
    sentence = (np.cumsum(stream == eos_id) if eos_id is not None   # sentence number per word (N,)
                else np.zeros(total, dtype=np.int64))
    keep_prob = np.minimum(1.0, (np.sqrt(counts / (sample * total)) + 1) * sample * total
                           / np.maximum(counts, 1))
    if eos_id is not None:
        keep_prob[eos_id] = 0.0                    # </s> ends a sentence; it is never trained
    noise = np.where(in_vocab, counts, 0.0) ** 0.75
    if eos_id is not None:
        noise[eos_id] = 0.0
    noise /= noise.sum()
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


def nearest_neighbours(embeddings, vocab, words, k=5):
    """The k nearest words by cosine for each of ``words`` that is in the vocabulary."""
    emb = lm.to_numpy(embeddings)
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

def evaluate(params, ids, batch_size, num_steps):
    """Perplexity of ``ids`` (no dropout, state carried across windows)."""
    xp = lm.get_array_module(params["W_h"])
    streams = corpora.batchify(ids, batch_size)
    H = params["W_h"].shape[1]
    h = xp.zeros((batch_size, H), dtype=params["W_h"].dtype)
    c = xp.zeros_like(h)
    total, count = 0.0, 0
    for start in range(0, streams.shape[1] - 1, num_steps):
        stop = min(start + num_steps, streams.shape[1] - 1)
        inputs = xp.asarray(streams[:, start:stop])
        targets = xp.asarray(streams[:, start + 1:stop + 1])
        loss, _, (h, c) = lm.lm_loss_and_grads(params, inputs, targets, h, c, backward=False)
        total += loss * inputs.size
        count += inputs.size
    return perplexity(total / count)


def clip_by_global_norm(grads, max_norm):
    """Scale all gradients by min(1, max_norm / ||g||), ||g|| over all of them; returns ||g||."""
    norm = math.sqrt(sum(float(g.ravel() @ g.ravel()) for g in grads.values()))
    if norm > max_norm:
        for g in grads.values():
            g *= max_norm / norm
    return norm


def sgd_step(params, grads, trainable, lr, num_steps, max_norm):
    """One SGD step on the paper's cost; returns the gradient norm before clipping.

    The paper's (and its authors' TensorFlow) cost is summed over the T = ``num_steps`` steps and
    averaged over the B streams: T times the per-token mean that ``lm_loss_and_grads`` returns,
    so its gradient is T times ours. "lr 1, clip at 5" refer to that cost.
    """
    grads = {k: grads[k] for k in trainable}
    for g in grads.values():
        g *= num_steps                              # in place: the arrays are this step's own
    norm = clip_by_global_norm(grads, max_norm)
    if math.isfinite(norm):
        for k in trainable:
            params[k] -= lr * grads[k]
    return norm


def learning_rate(args, epoch: int) -> float:
    """lr for 0-based ``epoch``: args.lr for the first decay_after epochs, then x lr_decay per epoch."""
    return args.lr * args.lr_decay ** max(0, epoch + 1 - args.decay_after)


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


def save_state(args, params, vocab, state, extra, path):
    meta = {"format": FORMAT, "settings": {k: getattr(args, k) for k in MODEL_SETTINGS},
            "split": "by document, within each genre in file order: 4 mod 10 valid, "
                     "5 mod 10 test, else train (files named *-train*, *-dev*, *-test*: whole)",
            **state}
    lm.save_checkpoint(path, params, vocab, meta, extra)


def train(args) -> dict:
    """Train (or resume) one LM; returns the final training state (history, perplexities)."""
    xp = lm.get_backend(args.device)
    args.epochs = args.epochs or (None if args.resume else MAX_EPOCHS)
    dtype = np.dtype(args.dtype)
    resume_from = last_path(args.out)
    resumed = None
    if args.resume:
        params, vocab, meta, extra = lm.load_checkpoint(resume_from)
        if meta.get("format") != FORMAT or "train" not in meta:
            raise lm.CheckpointError(f"{resume_from} is not a resumable train.py checkpoint")
        epochs_asked = args.epochs
        for key, value in meta["settings"].items():   # the model's settings come from the run
            setattr(args, key, value)
        args.epochs = epochs_asked or args.epochs
        dtype = np.dtype(args.dtype)
        resumed = meta
    data = corpora.load_corpus(**corpora.corpus_settings(vars(args)))
    V = len(data.vocab)
    if resumed is not None:
        lm.check_vocab(resume_from, vocab, data.vocab)
        params = {k: xp.asarray(v, dtype=dtype) for k, v in params.items()}
        state = resumed["train"]
        h, c = xp.asarray(extra["h"], dtype=dtype), xp.asarray(extra["c"], dtype=dtype)
        print(f"resuming {resume_from}: epoch {state['epoch'] + 1}, window {state['window']}",
              file=sys.stderr)
    else:
        params = lm.init_params(V, args.embedding_size, args.hidden_size, seed=args.seed,
                                scale=args.init_scale, dtype=dtype, xp=xp)
        state = {"epoch": 0, "window": 0, "rng": None, "history": [], "best_valid_ppl": None,
                 "loss_sum": 0.0, "tokens": 0, "finished": False, "train_seconds": 0.0,
                 "cbow": None}
        if args.embeddings == "cbow":
            W_in, losses = train_cbow(data.ids["train"], V, args.embedding_size,
                                      eos_id=data.word_to_id.get(corpora.EOS),
                                      window=args.cbow_window, negative=args.cbow_negative,
                                      sample=args.cbow_sample, min_count=args.cbow_min_count,
                                      epochs=args.cbow_epochs, lr=args.cbow_lr, seed=args.seed,
                                      progress=not args.no_progress, xp=xp)
            params["embedding"] = W_in.astype(dtype)
            probes = ["man", "city", "said", "good", "he", "two", "war", "water"]
            state["cbow"] = {"loss_per_epoch": losses,
                             "neighbours": nearest_neighbours(W_in, data.vocab, probes)}
            norms = np.linalg.norm(lm.to_numpy(W_in), axis=1)          # (V,)
            index = data.word_to_id
            for word, near in state["cbow"]["neighbours"].items():
                listed = ", ".join(f"{w} ({norms[index[w]]:.2f})" for w in near)
                print(f"  cbow neighbours of {word!r} ({norms[index[word]]:.2f}): {listed}  "
                      f"[vector norms in brackets]", file=sys.stderr)
            np.save(os.path.splitext(args.out)[0] + ".cbow.npy", lm.to_numpy(W_in))
        h = xp.zeros((args.batch_size, args.hidden_size), dtype=dtype)
        c = xp.zeros_like(h)
    if state["finished"]:
        print(f"{resume_from} has already finished training", file=sys.stderr)
        return state

    streams = corpora.batchify(data.ids["train"], args.batch_size)     # (B, N)
    n_windows = math.ceil((streams.shape[1] - 1) / args.num_steps)
    rng = np.random.default_rng(args.seed)
    if state["rng"] is not None:
        rng.bit_generator.state = state["rng"]
    trainable = [k for k in params if not (k == "embedding" and args.embeddings == "cbow")]
    windows_this_run = 0
    machine = machine_name(xp)

    def save_last():
        state["rng"] = rng.bit_generator.state
        save_state(args, params, data.vocab, {"train": state, "machine": machine},
                   {"h": h, "c": c}, last_path(args.out))

    with Interrupt() as interrupt:
        while state["epoch"] < args.epochs:
            epoch, lr = state["epoch"], learning_rate(args, state["epoch"])
            bar = tqdm(total=n_windows, initial=state["window"], disable=args.no_progress,
                       desc=f"epoch {epoch + 1}/{args.epochs} lr {lr:.3g}", unit="win")
            clock = epoch_start = time.perf_counter()
            epoch_tokens = 0
            while state["window"] < n_windows:
                start = state["window"] * args.num_steps
                stop = min(start + args.num_steps, streams.shape[1] - 1)
                inputs = xp.asarray(streams[:, start:stop])                   # (B, T)
                targets = xp.asarray(streams[:, start + 1:stop + 1])          # (B, T)
                keep = rng.random((args.batch_size, stop - start, args.hidden_size)) >= args.dropout
                mask = xp.asarray(keep / (1.0 - args.dropout), dtype=dtype)   # (B, T, H)
                loss, grads, (h_new, c_new) = lm.lm_loss_and_grads(params, inputs, targets, h, c, mask)
                norm = (sgd_step(params, grads, trainable, lr, inputs.shape[1], args.max_grad_norm)
                        if math.isfinite(loss) else math.nan)        # no step on a bad loss
                if not math.isfinite(norm):
                    raise FloatingPointError(
                        f"non-finite loss or gradient at epoch {epoch + 1}, window {state['window']}: "
                        f"training stopped; the last good state is in {last_path(args.out)} "
                        "(try a lower --lr)")
                h, c = h_new, c_new
                state["window"] += 1
                state["loss_sum"] += loss * inputs.size
                state["tokens"] += int(inputs.size)
                windows_this_run += 1
                epoch_tokens += int(inputs.size)
                bar.update(1)
                if windows_this_run % 10 == 0:
                    tok_s = epoch_tokens / (time.perf_counter() - epoch_start)
                    bar.set_postfix(ppl=f"{perplexity(state['loss_sum'] / state['tokens']):.1f}",
                                    tok_s=f"{tok_s:.0f}")
                stop_now = interrupt.requested or windows_this_run == args.stop_after
                if stop_now or state["window"] % args.save_every == 0:
                    state["train_seconds"] += time.perf_counter() - clock
                    clock = time.perf_counter()
                    save_last()
                if stop_now:
                    bar.close()
                    print(f"stopped; resume with: python train.py --resume --out {args.out}",
                          file=sys.stderr)
                    return state
            bar.close()
            state["train_seconds"] += time.perf_counter() - clock
            valid_ppl = evaluate(params, data.ids["valid"], args.batch_size, args.num_steps)
            train_ppl = perplexity(state["loss_sum"] / max(state["tokens"], 1))
            state["history"].append({"epoch": epoch + 1, "lr": lr, "train_ppl": train_ppl,
                                     "valid_ppl": valid_ppl})
            print(f"epoch {epoch + 1}: lr {lr:.4g}  train ppl {train_ppl:.2f}  "
                  f"valid ppl {valid_ppl:.2f}", file=sys.stderr)
            best = state["best_valid_ppl"]
            # no stopping while the learning rate is still at its start: the decay brings the gains
            improved = (args.min_improvement is None or best is None
                        or epoch + 1 <= args.decay_after
                        or valid_ppl < best * (1.0 - args.min_improvement))
            if best is None or valid_ppl < best:
                state["best_valid_ppl"] = valid_ppl
                save_state(args, params, data.vocab, {"train": state, "machine": machine},
                           {}, args.out)
            state.update(epoch=epoch + 1, window=0, loss_sum=0.0, tokens=0)
            h = xp.zeros_like(h)             # each epoch reads the text from its start
            c = xp.zeros_like(c)
            if not improved:
                print(f"validation perplexity improved by less than {args.min_improvement:.1%}: "
                      "stopping", file=sys.stderr)
                break
            save_last()

    # the end: test perplexity of the best model, recorded in both checkpoints
    best_params = lm.load_checkpoint(args.out)[0]
    best_params = {k: xp.asarray(v, dtype=dtype) for k, v in best_params.items()}
    state["test_ppl"] = evaluate(best_params, data.ids["test"], args.batch_size, args.num_steps)
    state["finished"] = True
    print(f"best valid ppl {state['best_valid_ppl']:.2f}, test ppl {state['test_ppl']:.2f} "
          f"({state['train_seconds'] / 60:.1f} min of training on {machine})", file=sys.stderr)
    if args.corpus == "synthetic":
        print(f"the planted language's perplexity: at best "
              f"{corpora.planted_perplexity(args.max_distance, args.fixed_distance):.2f}, without "
              f"the noun's number at the verb "
              f"{corpora.planted_perplexity(args.max_distance, args.fixed_distance, False):.2f}",
              file=sys.stderr)
    save_state(args, best_params, data.vocab, {"train": state, "machine": machine}, {}, args.out)
    save_last()
    return state


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        state = train(args)
    except (lm.CheckpointError, corpora.CorpusError, FloatingPointError, RuntimeError,
            ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:     # outside the SGD loop (CBOW, final evaluation)
        print("interrupted outside the training loop; checkpoints written so far are kept",
              file=sys.stderr)
        return 130
    if state.get("finished"):
        print(json.dumps({k: state[k] for k in ("best_valid_ppl", "test_ppl", "train_seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
