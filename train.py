"""Train the hand-written LSTM language model (manual BPTT, SGD) with the paper's set-up.

    python train.py                                  # joint embeddings, Brown, the paper's schedule
    python train.py --embeddings cbow --out runs/cbow.npz
    python train.py --cell gru --out runs/gru.npz    # a GRU or a vanilla RNN (cells.py) instead
    python train.py --corpus synthetic --out runs/synthetic.npz      # planted memory
    python train.py --corpus ud/en_ewt/ --out runs/ewt.npz           # your CoNLL-U files

Writes ``--out`` (the best model by validation perplexity) and ``<out>.last.npz`` (everything
needed to ``--resume``: weights, carried state, RNG state, position in the epoch). Ctrl-C saves
and exits with status 130; a non-finite loss or a failed save stops with status 1 and the last
good checkpoint left in place.

Reading order: the options, evaluation, the SGD step and the learning-rate schedule, then
``train``: the loop over epochs and windows, whole. What keeps a run alive across interruptions
(its start and resume, saves, messages) is in tool/training.py.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from threadpoolctl import threadpool_limits

import cells
import corpus
import lstm_memory
from tool import cli, corpora, parallel, training
from tool.checkpoints import CheckpointError

EXIT_STATUS = ("exit status: 0 trained, or stopped by --stop-after; 1 error (one line on stderr); "
               "2 usage; 130 Ctrl-C, after saving the resumable state")


def build_parser() -> argparse.ArgumentParser:
    """The options: data, model and optimisation (the paper's values), word2vec CBOW, the run."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=EXIT_STATUS,
                                formatter_class=cli.HelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--corpus", default="brown", type=corpora.corpus_name, metavar="NAME_OR_PATH",
                      help="brown or treebank (read through NLTK), synthetic (planted memory), "
                           "generated (the tests' toy language), or a file or folder of your own "
                           "CoNLL-U or word/TAG text")
    data.add_argument("--max-distance", type=cli.checked(int, "an integer from 1 to 200",
                                                         lambda n: 1 <= n <= 200), default=15,
                      help="synthetic: D, the verb agrees with a noun 1..D words back")
    data.add_argument("--fixed-distance", action="store_true",
                      help="synthetic: every verb exactly --max-distance words after its noun")
    data.add_argument("--tag-column", default="upos", choices=("upos", "xpos"),
                      help="CoNLL-U: the tag column to read")
    data.add_argument("--vocab-size", type=cli.COUNT, default=10000,
                      help="most frequent words kept (+ <unk>)")
    data.add_argument("--max-train-tokens", type=cli.COUNT, default=None,
                      help="train on the first N training tokens only (quick runs)")
    model = p.add_argument_group("model (the paper's values)")
    model.add_argument("--cell", default="lstm", choices=tuple(cells.CELLS),
                       help="lstm (the paper's); gru (reset before the product, as TensorFlow's) "
                            "or rnn (h = tanh(W_x x + W_h h + b)), of cells.py: state h only")
    model.add_argument("--embedding-size", type=cli.COUNT, default=64, help="E")
    model.add_argument("--hidden-size", type=cli.COUNT, default=256, help="H, the state's units")
    model.add_argument("--embeddings", default="joint", choices=("joint", "cbow"),
                       help="joint: trained with the LM; cbow: word2vec CBOW, trained first, frozen")
    model.add_argument("--dropout", type=cli.BELOW_ONE, default=0.5,
                       help="dropout on the LSTM output only")
    model.add_argument("--init-scale", type=cli.POSITIVE, default=0.05, help="weights ~ U(-s, s)")
    opt = p.add_argument_group("optimisation (the paper's values)")
    opt.add_argument("--batch-size", type=cli.COUNT, default=20, help="B parallel streams")
    opt.add_argument("--num-steps", type=cli.COUNT, default=50, help="T steps of truncated BPTT")
    opt.add_argument("--lr", type=cli.POSITIVE, default=1.0, help="SGD learning rate")
    opt.add_argument("--decay-after", type=cli.NATURAL, default=6,
                     help="epochs at the full learning rate")
    opt.add_argument("--lr-decay", type=cli.DECAY, default=0.8, help="factor per epoch after that")
    opt.add_argument("--max-grad-norm", type=cli.POSITIVE, default=5.0,
                     help="global gradient-norm clip")
    opt.add_argument("--epochs", type=cli.COUNT, default=None,
                     help=f"at most this many epochs ({training.MAX_EPOCHS}, the authors' setting; --resume "
                          "keeps the interrupted run's value unless this is given)")
    opt.add_argument("--min-improvement", type=cli.BELOW_ONE, default=None,
                     help="early stopping (off by default, as the authors'): after --decay-after "
                          "epochs, stop when an epoch lowers validation perplexity by less than "
                          "this fraction of the best so far (0: once it no longer improves)")
    w2v = p.add_argument_group("word2vec CBOW (--embeddings cbow; word2vec's defaults)")
    w2v.add_argument("--cbow-window", type=cli.COUNT, default=5,
                     help="context words on each side, shrunk at random to 1..window")
    w2v.add_argument("--cbow-negative", type=cli.COUNT, default=5, help="negative samples per word")
    w2v.add_argument("--cbow-sample", type=cli.NONNEGATIVE, default=1e-3,
                     help="sub-sampling threshold of frequent words (0: off)")
    w2v.add_argument("--cbow-min-count", type=cli.COUNT, default=5, help="rarer words: initial vectors")
    w2v.add_argument("--cbow-epochs", type=cli.COUNT, default=5, help="passes over the training text")
    w2v.add_argument("--cbow-lr", type=cli.POSITIVE, default=0.05,
                     help="decays linearly to 0 (word2vec's CBOW setting; 0.025 is skip-gram's)")
    run = p.add_argument_group("run")
    run.add_argument("--out", default=None, help="best checkpoint (.npz); default: runs/"
                     "[<cell>-]<embeddings>.npz, no prefix for the LSTM (never checkpoints/)")
    run.add_argument("--resume", action="store_true",
                     help="continue from <out>.last.npz with its settings; a data, model or "
                          "optimisation option given as well must have the checkpoint's value "
                          "(--epochs may raise the number of epochs)")
    run.add_argument("--restart", action="store_true",
                     help="start a new run even where --out holds one (finished or stopped), "
                          "replacing its checkpoints")
    run.add_argument("--seed", type=cli.NATURAL, default=0,
                     help="initial weights, dropout masks, CBOW, the generated languages")
    run.add_argument("--device", default="auto", choices=cli.DEVICES, help=cli.DEVICE_HELP)
    run.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                     help="of the weights and the training arithmetic")
    run.add_argument("--save-every", type=cli.COUNT, default=200,
                     help="windows between saves of the resumable state")
    run.add_argument("--stop-after", type=cli.COUNT, default=None,
                     help="stop after N windows in this run, saving the resumable state as Ctrl-C "
                          "does, but with exit status 0: a planned stop")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """The command line; ``given`` names the options typed on it (the rest are defaults)."""
    p = build_parser()
    args = p.parse_args(argv)
    if args.resume and args.restart:
        p.error("--resume goes on with the run in --out, --restart replaces it: give one")
    if args.fixed_distance and args.corpus != "synthetic":
        p.error("--fixed-distance is an option of --corpus synthetic")
    if args.max_train_tokens is not None and args.max_train_tokens < 2 * args.batch_size:
        p.error("--max-train-tokens is too small for --batch-size streams")
    prefix = "" if args.cell == "lstm" else f"{args.cell}-"     # runs/joint.npz, runs/gru-joint.npz
    args.out = args.out or os.path.join("runs", f"{prefix}{args.embeddings}.npz")
    unset = object()                    # parsed again onto "unset": what stays unset was not typed
    typed = p.parse_args(argv, argparse.Namespace(**dict.fromkeys(vars(args), unset)))
    return argparse.Namespace(**vars(args),
                              given=frozenset(k for k, v in vars(typed).items() if v is not unset))


def perplexity(mean_loss: float) -> float:
    """exp(mean cross-entropy), saturating at exp(700) instead of overflowing."""
    return math.exp(min(mean_loss, 700.0))


def evaluate(params, ids, batch_size, num_steps, workers=1, cell=None):
    """Perplexity of ``ids`` (no dropout, state carried across windows).

    Args: params, the LM's arrays (lstm_memory.PARAM_SHAPES); ids (N,) word ids; batch_size B streams;
    num_steps T steps per window; workers, threads that share the streams; cell, of cells.CELLS.
    """
    xp = lstm_memory.get_array_module(params["W_h"])
    streams = corpus.batchify(ids, batch_size)                           # (B, N // B)
    h = xp.zeros((batch_size, params["W_h"].shape[1]), dtype=params["W_h"].dtype)   # (B, H)
    c = xp.zeros_like(h)
    total, count = 0.0, 0
    for start in range(0, streams.shape[1] - 1, num_steps):
        stop = min(start + num_steps, streams.shape[1] - 1)
        inputs = xp.asarray(streams[:, start:stop])                     # (B, T)
        targets = xp.asarray(streams[:, start + 1:stop + 1])            # (B, T)
        loss, _, (h, c) = parallel.lm_loss_and_grads(params, inputs, targets, h, c,
                                                     backward=False, workers=workers, cell=cell)
        total += loss * inputs.size
        count += inputs.size
    return perplexity(total / count)


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


def train(args) -> dict:
    """Train (or resume) one LM; returns the training state (history, perplexities).

    Args: args, the command line of ``parse_args``. Raises cli.Stopped after Ctrl-C (state saved).
    """
    xp = cli.backend(args.device)
    run, data = training.start(args, build_parser(), xp)       # new, or resumed from .last.npz
    settings, state, cell = run.settings, run.state, cells.CELLS[run.settings.cell]
    if state["finished"]:
        return state
    streams = corpus.batchify(data.ids["train"], settings.batch_size)              # (B, N)
    n_windows = math.ceil((streams.shape[1] - 1) / settings.num_steps)
    trainable = [k for k in run.params if not (k == "embedding" and settings.embeddings == "cbow")]
    workers, windows_this_run = cli.blas_threads(), 0
    # BLAS on one thread throughout, the streams split among `workers` threads (tool/parallel.py)
    with cli.Interrupt() as interrupt, threadpool_limits(limits=1, user_api="blas"):
        while state["epoch"] < settings.epochs:
            epoch, lr = state["epoch"], learning_rate(settings, state["epoch"])
            progress = training.EpochProgress(run, n_windows, lr)
            clock = time.perf_counter()
            for window in range(state["window"], n_windows):          # truncated BPTT windows
                start = window * settings.num_steps
                stop = min(start + settings.num_steps, streams.shape[1] - 1)
                inputs = xp.asarray(streams[:, start:stop])                       # (B, T)
                targets = xp.asarray(streams[:, start + 1:stop + 1])              # (B, T)
                keep = (run.rng.random((settings.batch_size, stop - start, settings.hidden_size))
                        >= settings.dropout)                                       # (B, T, H)
                mask = xp.asarray(keep / (1.0 - settings.dropout), dtype=settings.dtype)
                loss, grads, (h, c) = parallel.lm_loss_and_grads(
                    run.params, inputs, targets, run.h, run.c, mask, workers=workers, cell=cell)
                norm = (sgd_step(run.params, grads, trainable, lr, inputs.shape[1],
                                 settings.max_grad_norm)
                        if math.isfinite(loss) else math.nan)          # no step on a bad loss
                if not math.isfinite(norm):
                    raise FloatingPointError(training.diverged(run, epoch, window))
                run.h, run.c = h, c                                    # carried to the next window
                state["window"] = window + 1
                state["loss_sum"] += loss * inputs.size
                state["tokens"] += int(inputs.size)
                windows_this_run += 1
                progress.update(int(inputs.size), perplexity(state["loss_sum"] / state["tokens"]))
                stop_now = interrupt.requested or windows_this_run == settings.stop_after
                if stop_now or state["window"] % settings.save_every == 0:
                    state["train_seconds"] += time.perf_counter() - clock
                    clock = time.perf_counter()
                    training.save_last(run)
                if stop_now:
                    progress.close()
                    message = f"stopped; resume with: python train.py --resume --out {settings.out}"
                    if interrupt.requested:
                        raise cli.Stopped(message)
                    print(message, file=sys.stderr)
                    return state
            progress.close()
            state["train_seconds"] += time.perf_counter() - clock
            # the epoch's end: validation perplexity, the best model kept, early stopping
            valid_ppl = evaluate(run.params, data.ids["valid"], settings.batch_size,
                                 settings.num_steps, workers, cell)
            train_ppl = perplexity(state["loss_sum"] / max(state["tokens"], 1))
            state["history"].append({"epoch": epoch + 1, "lr": lr, "train_ppl": train_ppl,
                                     "valid_ppl": valid_ppl})
            print(f"epoch {epoch + 1}: lr {lr:.4g}  train ppl {train_ppl:.2f}  "
                  f"valid ppl {valid_ppl:.2f}", file=sys.stderr)
            best = state["best_valid_ppl"]
            if best is None or valid_ppl < best:
                state["best_valid_ppl"] = valid_ppl
                training.save(run, run.params, {}, settings.out)
            state.update(epoch=epoch + 1, window=0, loss_sum=0.0, tokens=0)
            run.h, run.c = xp.zeros_like(run.h), xp.zeros_like(run.c)  # each epoch reads anew
            # no early stopping (off by default) while the learning rate is still at its start
            if (settings.min_improvement is not None and best is not None
                    and epoch + 1 > settings.decay_after
                    and valid_ppl >= best * (1.0 - settings.min_improvement)):
                print(training.stop_message(valid_ppl, best, settings.min_improvement),
                      file=sys.stderr)
                break
            training.save_last(run)
    best_params = training.load_best(run)
    state["test_ppl"] = evaluate(best_params, data.ids["test"], settings.batch_size,
                                 settings.num_steps, workers, cell)
    training.finish(run, best_params)
    return state


def main(argv=None) -> int:
    """Run train.py; returns the exit status (EXIT_STATUS)."""
    args = parse_args(argv)
    result = {}

    def locked_train():
        with training.lock(args.out):                  # one run at a time writes --out
            result.update(train(args))

    status = cli.exit_status(
        locked_train,
        (training.TrainingError, CheckpointError, corpus.CorpusError, FloatingPointError,
         RuntimeError, ValueError),
        "interrupted; the checkpoints written before are kept",
        folders=[os.path.dirname(os.path.abspath(args.out))])
    if status == 0 and result.get("finished"):
        print(json.dumps({k: result[k] for k in ("best_valid_ppl", "test_ppl", "train_seconds")}))
    return status


if __name__ == "__main__":
    sys.exit(main())
