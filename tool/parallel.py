"""CPU threads around the method: the B streams of a window or of a sweep cut into blocks, one
thread each with one BLAS thread, and the blocks' results added up.

NumPy releases the GIL, so on a CPU with W cores W workers keep every core busy, also in the
element-wise work that NumPy runs on one core; an idle BLAS thread would spin for a while after
each product and take a core from them, so BLAS stays on one thread meanwhile. On a GPU (CuPy) the
method's functions are called as they are.
"""
from __future__ import annotations

import concurrent.futures
import functools
import threading

import numpy as np

import lstm_memory


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


def sweep_state_gradients(params, streams, labelings: dict, label_names: dict, K: int,
                          window: int = 50, progress=None, workers: int = 1):
    """``lstm_memory.sweep_state_gradients`` with the streams split among ``workers`` threads
    (NumPy only), each sweeping its own block; their sums and counts are added up."""
    B, N = streams.shape
    if N <= K or workers < 2 or B < 2 or lstm_memory.get_array_module(params["W_h"]) is not np:
        return lstm_memory.sweep_state_gradients(params, streams, labelings, label_names, K,
                                                 window, progress)
    def step_done(n):                                  # every step of every worker
        if STOP.is_set():
            raise Stopped
        if progress is not None:
            progress(n)

    results = map_stream_blocks(
        lambda rows: lstm_memory.sweep_state_gradients(
            params, streams[rows], {n: lab[rows] for n, lab in labelings.items()}, label_names,
            K, window, step_done), B, workers)
    total = results[0]
    for other in results[1:]:
        total.flush()
        other.flush()
        total.sums += other.sums
        total.counts += other.counts
    return total
