"""Speed of the two hot loops at the paper's size, as medians over repeats (not a test).

    python benchmarks/benchmark.py                   # both, on the default device
    python benchmarks/benchmark.py --what analysis --device cpu --max-delay 30

train:    tokens/s of one SGD step of the LM (forward, BPTT, clipping, update) on a 20 x 50 window (B x T)
analysis: positions/s of the forward-mode sweep with all K+1 delays, c and h, and analyze.py's
          classes of its 0..K sweep (all positions and 4 frequency bins; --classes C for C bins);
          peak memory of the sweep's arrays
"""
import argparse
import os
import sys
import time
import tracemalloc

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import lstm_memory  # noqa: E402
import train  # noqa: E402


def timed(xp, fn, repeats):
    times = []
    for _ in range(repeats):
        lstm_memory.synchronize(xp)
        start = time.perf_counter()
        fn()
        lstm_memory.synchronize(xp)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_train(xp, args):
    V, E, H, B, T = args.vocab, 64, 256, 20, 50
    rng = np.random.default_rng(0)
    params = lstm_memory.init_params(V, E, H, xp=xp)
    inputs, targets = (xp.asarray(rng.integers(0, V, (B, T))) for _ in range(2))
    mask = xp.asarray((rng.random((B, T, H)) >= 0.5) * 2.0, dtype=np.float32)
    h = xp.zeros((B, H), dtype=np.float32)
    workers = train.blas_threads()

    def step():
        _, grads, _ = lstm_memory.lm_loss_and_grads(params, inputs, targets, h, h, mask, workers=workers)
        train.sgd_step(params, grads, list(params), 0.1, T, 5.0)

    with threadpool_limits(limits=1, user_api="blas"):      # as train.py runs it
        step()                                                # warm-up
        seconds = timed(xp, step, args.repeats)
    print(f"train: {B * T / seconds:,.0f} tokens/s (median of {args.repeats} windows of "
          f"{B}x{T}, V={V}, E={E}, H={H}) on {train.machine_name(xp)}")


def bench_analysis(xp, args):
    V, E, H, B, K, N = args.vocab, 64, 256, 20, args.max_delay, args.positions // 20
    rng = np.random.default_rng(0)
    params = lstm_memory.init_params(V, E, H, xp=xp)
    streams = rng.integers(0, V, (B, N))
    # as analyze.py's 0..K sweep on Brown: all positions and 4 frequency bins (the POS classes of
    # Table 1 are in its cheap delay-0 sweep)
    labels = {"freq": rng.integers(-1, args.classes, (B, N))}
    names = {"freq": [f"bin {i}" for i in range(args.classes)]}
    run = lambda: lstm_memory.sweep_state_gradients(params, streams, labels, names, K,  # noqa: E731
                                           workers=args.workers)
    tracemalloc.start()
    run()                                                     # warm-up, and peak memory
    peak = tracemalloc.get_traced_memory()[1] if xp is np else \
        xp.get_default_memory_pool().total_bytes()
    tracemalloc.stop()
    seconds = timed(xp, run, args.repeats)
    print(f"analysis: {B * N / seconds:,.1f} positions/s (median of {args.repeats} sweeps of "
          f"{B}x{N} positions, K={K}, c and h, 1+{args.classes} classes, {args.workers} workers), "
          f"peak memory "
          f"{peak / 2**20:,.0f} MiB on {train.machine_name(xp)}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--what", default="all", choices=("all", "train", "analysis"))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    p.add_argument("--vocab", type=int, default=10001)
    p.add_argument("--max-delay", type=int, default=30)
    p.add_argument("--positions", type=int, default=1000, help="positions per analysis sweep")
    p.add_argument("--classes", type=int, default=4, help="classes besides 'all' in the sweep")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="analysis threads")
    args = p.parse_args()
    xp = lstm_memory.get_backend(args.device)
    if args.what in ("all", "train"):
        bench_train(xp, args)
    if args.what in ("all", "analysis"):
        bench_analysis(xp, args)
