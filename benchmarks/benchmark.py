"""Speed of the two hot loops, as medians over repeats, next to the bound of their matrix products
(not a test).

    python benchmarks/benchmark.py                   # both, at the paper's size, on the default device
    python benchmarks/benchmark.py --what analysis --device cpu --max-delay 30
    python benchmarks/benchmark.py --what analysis --device gpu --streams 2000
    python benchmarks/benchmark.py --cell gru        # a GRU or a vanilla RNN (cells.py)

train:    tokens/s of one SGD step of the LM (forward, BPTT, clipping, update) on a B x 50 window,
          run as train.py runs it (on a CPU: the streams split among one thread per BLAS thread)
analysis: positions/s of the forward-mode sweep with all K+1 delays, the cell's states (c and h
          of the LSTM, h of the GRU and RNN), and analyze.py's
          classes of its 0..K sweep, their sums kept per stream as analyze.py keeps them (the
          bootstrap's blocks; --no-blocks: summed over the streams, without intervals) (all positions and 4 frequency bins; --classes C for C bins);
          peak memory of the sweep's arrays

The bound: the FLOPs of each loop's matrix products at the speed of a plain product (NumPy's or
CuPy's matmul, all cores) of its largest shape, measured in the same run. "0.80 of the bound"
means the loop takes 1 / 0.80 times as long as its products alone would.
"""
import argparse
import os
import sys
import time
import tracemalloc

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cells  # noqa: E402
import lstm_memory  # noqa: E402
import train  # noqa: E402
from tool import cli, parallel  # noqa: E402


def times_of(xp, fn, repeats):
    """Seconds of each of ``repeats`` calls of fn (the device synchronised around each)."""
    times = []
    for _ in range(repeats):
        lstm_memory.synchronize(xp)
        start = time.perf_counter()
        fn()
        lstm_memory.synchronize(xp)
        times.append(time.perf_counter() - start)
    return np.array(times)


def product_speed(xp, a_shape, b_shape, repeats):
    """FLOP/s of a plain float32 matmul of these shapes (median of ``repeats``)."""
    rng = np.random.default_rng(1)
    a, b = (xp.asarray(rng.standard_normal(s, dtype=np.float32)) for s in (a_shape, b_shape))
    a @ b                                                              # warm-up
    flop = 2 * np.prod(a_shape[:-1]) * a_shape[-1] * b_shape[-1]
    return flop / float(np.median(times_of(xp, lambda: a @ b, repeats)))


def bench_train(xp, args):
    V, E, H, B, T = args.vocab, args.embedding_size, args.hidden_size, args.streams, 50
    rng = np.random.default_rng(0)
    cell = cells.CELLS[args.cell]
    params = lstm_memory.init_params(V, E, H, xp=xp, gates=cell.gates)
    inputs, targets = (xp.asarray(rng.integers(0, V, (B, T))) for _ in range(2))
    mask = xp.asarray((rng.random((B, T, H)) >= 0.5) * 2.0, dtype=np.float32)
    h = xp.zeros((B, H), dtype=np.float32)
    workers = cli.blas_threads()

    def step():
        _, grads, _ = parallel.lm_loss_and_grads(params, inputs, targets, h, h, mask, workers=workers,
                                                 cell=cell)
        train.sgd_step(params, grads, list(params), 0.1, T, 5.0)

    with threadpool_limits(limits=1, user_api="blas"):      # as train.py runs it
        step()                                                # warm-up
        tokens_per_s = B * T / times_of(xp, step, args.repeats)
    # products: the output layer's three (N x H x V) and the cell's G gate blocks, forward and
    # backward (the input, the state and the weight gradient: three each)
    N = B * T
    flop = 6 * N * H * V + 6 * cell.gates * N * H * (E + H)
    bound = product_speed(xp, (N, H), (H, V), args.repeats) / flop * N   # tokens/s
    median = float(np.median(tokens_per_s))
    print(f"train: {median:,.0f} tokens/s (median of {args.repeats} windows of {B}x{T}; "
          f"{np.min(tokens_per_s):,.0f} to {np.max(tokens_per_s):,.0f}), V={V}, E={E}, H={H}: "
          f"{args.cell}: {median / bound:.2f} of the bound ({bound:,.0f} tokens/s: {flop / N / 1e6:.1f} MFLOP "
          f"a token at {flop / N * bound / 1e9:.0f} GFLOP/s) on {cli.machine_name(xp)}")


def bench_analysis(xp, args):
    V, E, H, B, K = args.vocab, args.embedding_size, args.hidden_size, args.streams, args.max_delay
    N = max(args.positions // B, K + 1)
    rng = np.random.default_rng(0)
    cell = cells.CELLS[args.cell]
    params = lstm_memory.init_params(V, E, H, xp=xp, gates=cell.gates)
    streams = rng.integers(0, V, (B, N))
    # as analyze.py's 0..K sweep on Brown: all positions and 4 frequency bins (the POS classes of
    # Table 1 are in its cheap delay-0 sweep)
    labels = {"freq": rng.integers(-1, args.classes, (B, N))}
    names = {"freq": [f"bin {i}" for i in range(args.classes)]}
    run = lambda: (parallel.sweep_state_gradients if args.no_blocks else  # noqa: E731
                   parallel.sweep_blocks)(params, streams, labels, names, K, workers=args.workers,
                                                          cell=cell)
    tracemalloc.start()
    run()                                                     # warm-up, and peak memory
    peak = tracemalloc.get_traced_memory()[1] if xp is np else \
        xp.get_default_memory_pool().total_bytes()
    tracemalloc.stop()
    positions_per_s = B * N / times_of(xp, run, args.repeats)
    # the tangent product: M_c and M_h (LSTM; M_h alone for a GRU or RNN) times Jh of K delays,
    # per stream (K E, H) @ (H, H); the GRU's fold adds W_hn (H, H) @ (H, E + H)
    flop = 2 * len(cell.states) * K * E * H * H + (2 * H * H * (E + H) if cell is cells.GRU else 0)
    bound = product_speed(xp, (B, K * E, H), (B, H, H), args.repeats) / flop   # positions/s
    median = float(np.median(positions_per_s))
    print(f"analysis: {median:,.1f} positions/s (median of {args.repeats} sweeps of {B}x{N} "
          f"positions; {np.min(positions_per_s):,.1f} to {np.max(positions_per_s):,.1f}), K={K}, "
          f"E={E}, H={H}, {args.cell} ({' and '.join(cell.states)}), 1+{args.classes} classes"
          f"{f', {args.workers} workers' if xp is np else ''}: "
          f"{median / bound:.2f} of the bound ({bound:,.1f} positions/s: {flop / 1e9:.2f} GFLOP "
          f"a position at {flop * bound / 1e9:.0f} GFLOP/s), peak memory {peak / 2**20:,.0f} MiB "
          f"on {cli.machine_name(xp)}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--what", default="all", choices=("all", "train", "analysis"))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    p.add_argument("--vocab", type=int, default=10001, help="V")
    p.add_argument("--embedding-size", type=int, default=64, help="E")
    p.add_argument("--hidden-size", type=int, default=256, help="H")
    p.add_argument("--cell", default="lstm", choices=tuple(cells.CELLS))
    p.add_argument("--streams", type=int, default=20, help="B, parallel streams")
    p.add_argument("--max-delay", type=int, default=30, help="K")
    p.add_argument("--positions", type=int, default=1000, help="positions per analysis sweep")
    p.add_argument("--classes", type=int, default=4, help="classes besides 'all' in the sweep")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="analysis threads")
    p.add_argument("--no-blocks", action="store_true",
                   help="the sweep without the bootstrap's per-stream sums")
    args = p.parse_args()
    xp = cli.backend(args.device)
    if args.what in ("all", "train"):
        bench_train(xp, args)
    if args.what in ("all", "analysis"):
        bench_analysis(xp, args)
