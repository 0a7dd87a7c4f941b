"""CPU threads around the method: the B streams of a window cut into blocks, one thread each with
one BLAS thread, and the blocks' results added up; a sweep's streams swept one by one, each its
own block of the bootstrap (tool/bootstrap.py), ``workers`` at a time.

NumPy releases the GIL, so on a CPU with W cores W workers keep every core busy, also in the
element-wise work that NumPy runs on one core; an idle BLAS thread would spin for a while after
each product and take a core from them, so BLAS stays on one thread meanwhile. On a GPU (CuPy) the
method's functions are called as they are.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import threading

import numpy as np
from tqdm import tqdm

import lstm_memory
from tool.bootstrap import BLOCKS, BlockSums, leaves


@functools.lru_cache(maxsize=None)
def thread_pool(workers: int):
    """A pool of ``workers`` threads, made once and kept (the BLAS library gives every new thread
    a buffer of its own, so fresh threads for every window would cost that each time)."""
    return concurrent.futures.ThreadPoolExecutor(workers)


STOP = threading.Event()     # set on Ctrl-C: the workers of a sweep stop at their next step


class Stopped(Exception):
    """Raised in a worker that saw STOP."""


def map_stream_blocks(fn, B: int, workers: int, blocks: int | None = None) -> list:
    """[fn(rows) for each block of rows], the B streams cut into ``blocks`` (default: ``workers``)
    contiguous blocks (index arrays, by np.array_split), each on a thread of a pool of
    ``workers``, with one BLAS thread.

    Ctrl-C (KeyboardInterrupt in the main thread) sets STOP, waits for the workers to stop at
    their next step, and goes on as KeyboardInterrupt."""
    from threadpoolctl import threadpool_limits

    parts = np.array_split(np.arange(B), min(blocks or workers, B))
    with threadpool_limits(limits=1, user_api="blas"):
        futures = [thread_pool(min(workers, B)).submit(fn, rows) for rows in parts]
        try:
            return [future.result() for future in futures]
        except KeyboardInterrupt:
            STOP.set()
            concurrent.futures.wait(futures)
            raise
        finally:
            STOP.clear()


def lm_loss_and_grads(params, inputs, targets, h0, c0, dropout_mask=None, backward=True,
                      workers: int = 1):
    """``lstm_memory.lm_loss_and_grads`` with the B streams split among ``workers`` threads
    (NumPy only): the loss and the gradients are the sums of the blocks' shares, the carried
    state their concatenation. Arguments and results as there."""
    B, T = inputs.shape
    if workers < 2 or B < 2 or lstm_memory.get_array_module(params["W_h"]) is not np:
        return lstm_memory.lm_loss_and_grads(params, inputs, targets, h0, c0, dropout_mask,
                                             backward)
    parts = map_stream_blocks(
        lambda rows: lstm_memory.lm_loss_and_grads(
            params, inputs[rows], targets[rows], h0[rows], c0[rows],
            None if dropout_mask is None else dropout_mask[rows], backward, n_tokens=B * T),
        B, workers)
    loss = sum(part[0] for part in parts)
    grads = parts[0][1]
    for _, more, _ in parts[1:] if backward else ():
        for name in grads:
            grads[name] += more[name]
    state = tuple(np.concatenate([part[2][i] for part in parts]) for i in (0, 1))   # (B, H) each
    return loss, grads, state


def sweep_blocks(params, streams, labelings: dict, label_names: dict, K: int, window: int = 50,
                 progress=None, workers: int = 1, blocks: int = BLOCKS) -> BlockSums:
    """``lstm_memory.sweep_state_gradients`` of each of ``blocks`` contiguous groups of streams
    (one stream each when B <= blocks) on its own, on ``workers`` threads with NumPy, one after
    another with CuPy: the sums and counts of each block, for the bootstrap. Streams never meet,
    so the blocks add up to the sweep of all."""
    B, N = streams.shape
    xp = lstm_memory.get_array_module(params["W_h"])
    H, E = params["W_h"].shape[1], params["W_x"].shape[1]

    def step_done(n):                                  # every step of every worker
        if STOP.is_set():
            raise Stopped
        if progress is not None:
            progress(n)

    def sweep(rows):
        sums = lstm_memory.sweep_state_gradients(
            params, streams[rows], {n: lab[rows] for n, lab in labelings.items()}, label_names,
            K, window, step_done)
        sums.flush()
        return lstm_memory.to_numpy(sums.sums), sums.counts      # the float32 buffers are freed

    if xp is np and workers > 1 and N > K:
        parts = map_stream_blocks(sweep, B, workers, blocks)
    else:
        parts = [sweep(rows) for rows in np.array_split(np.arange(B), min(blocks, B))]
    return BlockSums(label_names, K, H, E, np.stack([p[0] for p in parts]),     # (B, K+1, C, 2H, E)
                     np.stack([p[1] for p in parts]))                           # (B, K+1, C)


def resample(results_of, draws, name: str = "", quiet: bool = False, workers: int = 1) -> list:
    """[leaves of results_of(weights) for each resample's block weights, a row of ``draws``]
    (tool/bootstrap.py), the rows shared among ``workers`` threads (SVDs release the GIL)."""
    bar = tqdm(total=len(draws), desc=f"{name} bootstrap", unit="resample", disable=quiet)

    def run(rows):
        out = []
        for weights in draws[rows]:
            if STOP.is_set():
                raise Stopped
            out.append(leaves(dataclasses.asdict(results_of(weights))))
            bar.update(1)
        return out

    parts = map_stream_blocks(run, len(draws), workers) if len(draws) else []
    bar.close()
    return [leaf for part in parts for leaf in part]
