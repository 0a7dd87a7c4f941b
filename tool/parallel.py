"""CPU threads around the method: the B streams of a window or of a sweep cut into blocks, one
thread each with one BLAS thread, and the blocks' results added up (a sweep's kept per block of
the bootstrap, tool/bootstrap.py); the bootstrap's resamples shared among threads.

NumPy releases the GIL, so on a CPU with W cores W workers keep every core busy, also in the
element-wise work that NumPy runs on one core; an idle BLAS thread would spin for a while after
each product and take a core from them, so BLAS stays on one thread meanwhile. On a GPU (CuPy) the
method's functions are called as they are.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import sys
import threading
import time

import numpy as np
from tqdm import tqdm

import lstm_memory
from tool.bootstrap import BLOCKS, BlockAccumulator, BlockSums, leaves


@functools.lru_cache(maxsize=None)
def thread_pool(workers: int):
    """A pool of ``workers`` threads, made once and kept (the BLAS library gives every new thread
    a buffer of its own, so fresh threads for every window would cost that each time)."""
    return concurrent.futures.ThreadPoolExecutor(workers)


STOP = threading.Event()     # set on Ctrl-C: the workers of a sweep stop at their next step


class Stopped(Exception):
    """Raised in a worker that saw STOP."""


def map_stream_blocks(fn, B: int, workers: int) -> list:
    """[fn(rows) for each block of rows], the B streams cut into ``workers`` contiguous blocks
    (index arrays, by np.array_split), each block on its own thread with one BLAS thread.

    Ctrl-C (KeyboardInterrupt in the main thread) sets STOP, waits for the workers to stop at
    their next step, and goes on as KeyboardInterrupt."""
    from threadpoolctl import threadpool_limits

    blocks = np.array_split(np.arange(B), min(workers, B))
    with threadpool_limits(limits=1, user_api="blas"):
        futures = [thread_pool(len(blocks)).submit(fn, rows) for rows in blocks]
        try:
            return [future.result() for future in futures]
        except KeyboardInterrupt:
            STOP.set()
            concurrent.futures.wait(futures)
            raise
        finally:
            STOP.clear()


def lm_loss_and_grads(params, inputs, targets, h0, c0, dropout_mask=None, backward=True,
                      workers: int = 1, cell=None):
    """``lstm_memory.lm_loss_and_grads`` with the B streams split among ``workers`` threads
    (NumPy only): the loss and the gradients are the sums of the blocks' shares, the carried
    state their concatenation. Arguments and results as there."""
    B, T = inputs.shape
    if workers < 2 or B < 2 or lstm_memory.get_array_module(params["W_h"]) is not np:
        return lstm_memory.lm_loss_and_grads(params, inputs, targets, h0, c0, dropout_mask,
                                             backward, cell=cell)
    parts = map_stream_blocks(
        lambda rows: lstm_memory.lm_loss_and_grads(
            params, inputs[rows], targets[rows], h0[rows], c0[rows],
            None if dropout_mask is None else dropout_mask[rows], backward, B * T, cell),
        B, workers)
    loss = sum(part[0] for part in parts)
    grads = parts[0][1]
    for _, more, _ in parts[1:] if backward else ():
        for name in grads:
            grads[name] += more[name]
    state = tuple(np.concatenate([part[2][i] for part in parts]) for i in (0, 1))   # (B, H) each
    return loss, grads, state


def sweep_state_gradients(params, streams, labelings: dict, label_names: dict, K: int,
                          window: int = 50, progress=None, workers: int = 1, cell=None):
    """``lstm_memory.sweep_state_gradients`` with the streams split among ``workers`` threads
    (NumPy only), each sweeping its own block; their sums and counts are added up."""
    B, N = streams.shape
    if N <= K or workers < 2 or B < 2 or lstm_memory.get_array_module(params["W_h"]) is not np:
        return lstm_memory.sweep_state_gradients(params, streams, labelings, label_names, K,
                                                 window, progress, cell=cell)
    def step_done(n):                                  # every step of every worker
        if STOP.is_set():
            raise Stopped
        if progress is not None:
            progress(n)

    results = map_stream_blocks(
        lambda rows: lstm_memory.sweep_state_gradients(
            params, streams[rows], {n: lab[rows] for n, lab in labelings.items()}, label_names,
            K, window, step_done, cell=cell), B, workers)
    total = results[0]
    for other in results[1:]:
        total.flush()
        other.flush()
        total.sums += other.sums
        total.counts += other.counts
    return total


def sweep_blocks(params, streams, labelings: dict, label_names: dict, K: int, window: int = 50,
                 progress=None, workers: int = 1, blocks: int = BLOCKS, cell=None) -> BlockSums:
    """``lstm_memory.sweep_state_gradients`` with the sums kept per block (tool/bootstrap.py): the
    B streams cut into min(B, ``blocks``) contiguous blocks (one stream each when B <= blocks),
    the blocks shared among ``workers`` threads with NumPy (each sweeps its streams together).
    Streams never meet, so the blocks add up to the sweep of all."""
    B, N = streams.shape
    xp = lstm_memory.get_array_module(params["W_h"])
    H, E = params["W_h"].shape[1], params["W_x"].shape[1]
    states = (cell or lstm_memory.LSTM).states
    nb = min(B, blocks)
    block_of_stream = np.arange(B) * nb // B                         # (B,) contiguous blocks

    def step_done(n):                                  # every step of every worker
        if STOP.is_set():
            raise Stopped
        if progress is not None:
            progress(n)

    def sweep(rows):
        sums = BlockAccumulator(label_names, K, H, E, block_of_stream[rows] - block_of_stream[rows[0]],
                                xp, states)
        lstm_memory.sweep_state_gradients(params, streams[rows], {n: lab[rows] for n, lab in
                                          labelings.items()}, label_names, K, window, step_done, sums,
                                          cell)
        return lstm_memory.to_numpy(sums.sums), sums.counts

    shares = np.array_split(np.arange(nb), min(workers, nb) if xp is np and N > K else 1)
    rows = [np.flatnonzero(np.isin(block_of_stream, share)) for share in shares]   # whole blocks
    parts = (map_stream_blocks(lambda i: sweep(rows[i[0]]), len(rows), len(rows)) if len(rows) > 1
             else [sweep(rows[0])])
    return BlockSums(label_names, K, H, E, np.concatenate([p[0] for p in parts]),  # nb, K+1, C, SH, E
                     np.concatenate([p[1] for p in parts]), states)                 # (nb, K+1, C)


def resample(results_of, draws, name: str = "", quiet: bool = False, workers: int = 1) -> list:
    """[leaves of results_of(weights) for each resample's block weights, a row of ``draws``]
    (tool/bootstrap.py), the rows shared among ``workers`` threads (SVDs release the GIL)."""
    bar = tqdm(total=len(draws), desc=f"{name} bootstrap", unit="resample", disable=quiet)
    clock = time.perf_counter()

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
    if len(draws):
        print(f"{name}: {len(draws)} resamples in {time.perf_counter() - clock:.0f} s", file=sys.stderr)
    return [leaf for part in parts for leaf in part]
