"""Forward-mode state gradients: the plain tangent step against finite differences and reverse
mode, the fast step against the plain one, the streaming averages, the measures of eq. 1-6."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import lstm_memory
from tool import parallel
from conftest import numerical_gradient, random_lstm

dims = st.integers(min_value=1, max_value=4)


def run_windows(X, h0, c0, W_x, W_h, b, K, window, fast=False):
    """Forward mode over X (B, T, E) in windows of ``window`` steps, carrying state and tangents
    across the boundaries; returns the Jacobians [dc_T; dh_T]/dx_{T-k}: (B, K+1, 2H, E) after the
    last step, by the plain tangent step (or the fast one)."""
    B, T, E = X.shape
    H = W_h.shape[1]
    Jc = Jh = np.zeros((B, K + 1, H, E))
    J, J_next = np.zeros((B, 2, K + 1, E, H)), np.empty((B, 2, K + 1, E, H))
    h, c = h0, c0
    for start in range(0, T, window):
        _, (h_end, c_end), caches = lstm_memory.lstm_forward(X[:, start:start + window], h, c, W_x, W_h, b)
        for cache in caches:
            if fast:
                J, J_next = lstm_memory.tangent_step_fast_in_place(J, cache, W_x, W_h, out=J_next), J
            else:
                Jc, Jh = lstm_memory.tangent_step(Jc, Jh, cache, W_x, W_h)
        h, c = h_end, c_end
    if fast:
        Jc, Jh = lstm_memory.tangents_in_paper_orientation(J)
    return np.concatenate([Jc, Jh], axis=2)                          # (B, K+1, 2H, E)


def fast_layout(Jc, Jh):
    """Plain tangents Jc, Jh (B, K+1, H, E) in the fast step's layout (B, 2, K+1, E, H)."""
    return np.ascontiguousarray(np.stack([Jc, Jh], axis=1).transpose(0, 1, 2, 4, 3))


@given(seed=st.integers(0, 10**6), B=dims, E=dims, H=dims, T=st.integers(1, 7),
       window=st.integers(1, 4))
def test_forward_mode_matches_finite_differences_across_windows(seed, B, E, H, T, window):
    """The plain step's Jc_{T-1,k} and Jh_{T-1,k} against central differences of c_T, h_T
    w.r.t. x_{T-1-k}."""
    rng, W_x, W_h, b, h0, c0 = random_lstm(seed, B, E, H)
    X = rng.normal(size=(B, T, E))
    K = T - 1
    J = run_windows(X, h0, c0, W_x, W_h, b, K, window)
    for k in range(K + 1):
        x_source = X[:, T - 1 - k].copy()

        def final_state(x):
            Xk = X.copy()
            Xk[:, T - 1 - k] = x
            _, (h, c), _ = lstm_memory.lstm_forward(Xk, h0, c0, W_x, W_h, b)
            return np.concatenate([c, h], axis=1)                     # (B, 2H)

        numeric = numerical_gradient(final_state, x_source)          # (B, 2H, B, E)
        per_stream = numeric[np.arange(B), :, np.arange(B), :]       # (B, 2H, E)
        np.testing.assert_allclose(J[:, k], per_stream, rtol=1e-5, atol=1e-7)


@given(seed=st.integers(0, 10**6), B=dims, E=dims, H=dims, T=st.integers(1, 6))
def test_forward_mode_equals_reverse_mode(seed, B, E, H, T):
    """<u, G v> = <G^T u, v>: G^T u comes from BPTT (lstm_backward with dc_T = u)."""
    rng, W_x, W_h, b, h0, c0 = random_lstm(seed, B, E, H)
    X = rng.normal(size=(B, T, E))
    J = run_windows(X, h0, c0, W_x, W_h, b, T - 1, T)
    _, _, caches = lstm_memory.lstm_forward(X, h0, c0, W_x, W_h, b)
    u, v = rng.normal(size=(B, H)), rng.normal(size=(B, T, E))
    for state, (dh_T, dc_T) in (("c", (np.zeros((B, H)), u)), ("h", (u, np.zeros((B, H))))):
        dX, _, _, _ = lstm_memory.lstm_backward(np.zeros((B, T, H)), dh_T, dc_T, caches)  # dX[:, s] = G^T u
        rows = slice(0, H) if state == "c" else slice(H, 2 * H)
        for k in range(T):
            forward = np.einsum("bh,bhe,be->", u, J[:, k, rows], v[:, T - 1 - k])
            reverse = np.einsum("be,be->", dX[:, T - 1 - k], v[:, T - 1 - k])
            assert np.isclose(forward, reverse, rtol=1e-9, atol=1e-12), (state, k)


def test_streaming_sums_equal_brute_force_average():
    """Per-delay and per-class means of the sweep against explicitly computed G_{t,k}."""
    rng = np.random.default_rng(3)
    V, E, H, B, N, K = 9, 3, 4, 2, 13, 4
    params = lstm_memory.init_params(V, E, H, seed=3, scale=0.6, dtype=np.float64)
    params["b"] += rng.normal(0, 0.5, 4 * H)
    streams = rng.integers(0, V, (B, N))
    tags = np.where(rng.random((B, N)) < 0.2, -1, rng.integers(0, 3, (B, N)))
    sums = lstm_memory.sweep_state_gradients(params, streams, {"tag": tags}, {"tag": ["a", "b", "c"]},
                                    K, window=5)
    assert sums.sums.dtype == np.float64
    # brute force: G_{t,k} for every t and k from a fresh forward-mode run to t
    G = {}
    for bb in range(B):
        X = params["embedding"][streams[bb:bb + 1]]                   # (1, N, E)
        for t in range(N):
            J = run_windows(X[:, :t + 1], np.zeros((1, H)), np.zeros((1, H)),
                            params["W_x"], params["W_h"], params["b"], K, t + 1)
            for k in range(min(K, t) + 1):
                G[bb, t, k] = J[0, k]
    for labeling, labels, n_classes in (("all", np.zeros_like(tags), 1), ("tag", tags, 3)):
        expected_count = np.zeros((n_classes, K + 1), int)
        expected_sum = np.zeros((n_classes, K + 1, 2 * H, E))
        for (bb, t, k), g in G.items():
            cls = labels[bb, t - k]
            if cls >= 0:
                expected_count[cls, k] += 1
                expected_sum[cls, k] += g
        np.testing.assert_array_equal(sums.count(labeling), expected_count)
        for state, rows in (("c", slice(0, H)), ("h", slice(H, 2 * H))):
            mean = sums.G_bar_per_class(labeling, state)
            expected = expected_sum[:, :, rows] / np.maximum(expected_count, 1)[:, :, None, None]
            filled = expected_count > 0
            np.testing.assert_allclose(mean[filled], expected[filled], rtol=1e-5, atol=1e-6)
            assert np.all(np.isnan(mean[~filled]))


@given(seed=st.integers(0, 10**6), B=dims, E=dims, H=dims, K=st.integers(0, 4))
def test_fast_tangent_step_equals_the_plain_step(seed, B, E, H, K):
    """One step from random (non-zero) tangents, non-zero biases and state: folded and
    transposed, the step computes what the equations say."""
    rng, W_x, W_h, b, h0, c0 = random_lstm(seed, B, E, H)
    _, _, cache = lstm_memory.lstm_step_forward(rng.normal(size=(B, E)), h0, c0, W_x, W_h, b)
    Jc_prev, Jh_prev = rng.normal(size=(B, K + 1, H, E)), rng.normal(size=(B, K + 1, H, E))
    Jc, Jh = lstm_memory.tangent_step(Jc_prev, Jh_prev, cache, W_x, W_h)
    J = lstm_memory.tangent_step_fast_in_place(fast_layout(Jc_prev, Jh_prev), cache, W_x, W_h,
                                               out=np.empty((B, 2, K + 1, E, H)))
    fast_c, fast_h = lstm_memory.tangents_in_paper_orientation(J)
    np.testing.assert_allclose(fast_c, Jc, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fast_h, Jh, rtol=1e-10, atol=1e-12)


@given(seed=st.integers(0, 10**6), B=dims, E=dims, H=dims, T=st.integers(1, 7),
       window=st.integers(1, 4))
def test_fast_and_plain_sweeps_agree_across_windows(seed, B, E, H, T, window):
    rng, W_x, W_h, b, h0, c0 = random_lstm(seed, B, E, H)
    X = rng.normal(size=(B, T, E))
    np.testing.assert_allclose(run_windows(X, h0, c0, W_x, W_h, b, T - 1, window, fast=True),
                               run_windows(X, h0, c0, W_x, W_h, b, T - 1, window),
                               rtol=1e-10, atol=1e-12)


def test_the_fast_step_refuses_to_write_into_its_input():
    rng, W_x, W_h, b, h0, c0 = random_lstm(0, 2, 3, 4)
    _, _, cache = lstm_memory.lstm_step_forward(rng.normal(size=(2, 3)), h0, c0, W_x, W_h, b)
    J = np.zeros((2, 2, 3, 3, 4))
    with pytest.raises(ValueError, match="other than J_prev"):
        lstm_memory.tangent_step_fast_in_place(J, cache, W_x, W_h, out=J)


def test_running_sums_keep_small_terms_of_a_long_text():
    """The sums are float64 across windows: 1e8 and then 1 average to 50000000.5 (float32 sums
    would give 50000000)."""
    sums = lstm_memory.StateGradientSums({}, K=0, H=1, E=1)
    for value in (1e8, 1.0):
        sums.add(np.full((1, 2, 1, 1, 1), value, dtype=np.float32), {"all": np.zeros((1, 1), int)})
        sums.flush()                                       # one window each
    assert sums.G_bar("c")[0, 0, 0] == 50000000.5
    assert sums.count("all").tolist() == [[2]]


def test_threaded_sweep_equals_the_single_thread_sweep():
    rng = np.random.default_rng(5)
    params = lstm_memory.init_params(11, 3, 5, seed=5, scale=0.5, dtype=np.float64)
    streams = rng.integers(0, 11, (5, 9))
    labels = {"tag": rng.integers(-1, 2, (5, 9))}
    one = lstm_memory.sweep_state_gradients(params, streams, labels, {"tag": ["a", "b"]}, K=3)
    three = parallel.sweep_state_gradients(params, streams, labels, {"tag": ["a", "b"]}, K=3, workers=3)
    for labeling in ("all", "tag"):
        np.testing.assert_array_equal(one.count(labeling), three.count(labeling))
        np.testing.assert_allclose(one.G_bar_per_class(labeling, "h"),
                                   three.G_bar_per_class(labeling, "h"), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("workers", [1, 3])
def test_the_blocks_of_a_sweep_add_up_to_the_sweep(workers):
    """tool/parallel.py keeps each stream's sums apart (a block of the bootstrap), on threads: the
    blocks' means equal the sweep of all streams at once, and block b the sweep of stream b;
    with fewer blocks than streams, a block is a group of contiguous streams (summed apart by
    the indexed adds over distinct blocks)."""
    rng = np.random.default_rng(5)
    params = lstm_memory.init_params(11, 3, 5, seed=5, scale=0.5, dtype=np.float64)
    streams = rng.integers(0, 11, (5, 9))
    labels = {"tag": rng.integers(-1, 2, (5, 9))}
    one = lstm_memory.sweep_state_gradients(params, streams, labels, {"tag": ["a", "b"]}, K=3)
    blocks = parallel.sweep_blocks(params, streams, labels, {"tag": ["a", "b"]}, K=3, workers=workers)
    assert blocks.sums.shape == (5, 4, 3, 10, 3) and blocks.counts.shape == (5, 4, 3)
    means = blocks.means()
    for labeling in ("all", "tag"):
        np.testing.assert_array_equal(one.count(labeling), means.count(labeling))
        for state in "ch":
            np.testing.assert_allclose(one.G_bar_per_class(labeling, state),
                                       means.G_bar_per_class(labeling, state),
                                       rtol=1e-6, atol=1e-7)
    second = lstm_memory.sweep_state_gradients(params, streams[1:2], {"tag": labels["tag"][1:2]},
                                               {"tag": ["a", "b"]}, K=3)
    only_second = blocks.means(np.array([0, 1, 0, 0, 0]))
    np.testing.assert_allclose(second.G_bar_per_class("tag", "h"),
                               only_second.G_bar_per_class("tag", "h"), rtol=1e-6, atol=1e-7)
    groups = parallel.sweep_blocks(params, streams, labels, {"tag": ["a", "b"]}, K=3,
                                   workers=workers, blocks=2)                # streams 0-2, 3-4
    assert groups.sums.shape[0] == 2
    np.testing.assert_allclose(groups.sums, [blocks.sums[:3].sum(0), blocks.sums[3:].sum(0)],
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(groups.counts, [blocks.counts[:3].sum(0), blocks.counts[3:].sum(0)])


def test_sweep_refuses_a_delay_longer_than_the_text():
    params = lstm_memory.init_params(5, 2, 3, dtype=np.float64)
    with pytest.raises(ValueError, match="larger than the text"):
        lstm_memory.sweep_state_gradients(params, np.zeros((2, 4), int), {}, {}, K=4)


# ---- measures (eq. 1-6) -----------------------------------------------------------------------

matrices = st.tuples(st.integers(0, 10**6), st.integers(2, 6), st.integers(2, 6))


@given(matrices)
def test_measures_of_the_top_singular_vector(args):
    seed, H, E = args
    G = np.random.default_rng(seed).normal(size=(H, E))
    V, S = lstm_memory.right_singular_vectors(G)
    assert np.isclose(lstm_memory.subspace_cosine(G, V[:, 0], 1), 1.0)
    r, m = lstm_memory.relative_memory(G, V[:, 0])
    assert np.isclose(m, 1.0) and np.isclose(r, S[0])
    np.testing.assert_allclose(S, lstm_memory.singular_values(G))


@given(matrices)
def test_measures_are_bounded_and_cosine_grows_with_n(args):
    seed, H, E = args
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(H, E))
    d = rng.normal(size=E)
    d /= np.linalg.norm(d)
    r, m = lstm_memory.relative_memory(G, d)
    assert 0.0 <= m <= 1.0 + 1e-12 and np.isclose(r, np.linalg.norm(G @ d))
    rank = min(H, E)
    cosines = [lstm_memory.subspace_cosine(G, d, n) for n in range(1, rank + 1)]
    assert all(0.0 <= c <= 1.0 + 1e-12 for c in cosines)
    assert all(b >= a - 1e-12 for a, b in zip(cosines, cosines[1:]))
    if rank == E:                    # H_rank is the whole embedding space
        assert np.isclose(cosines[-1], 1.0)
    with pytest.raises(ValueError):
        lstm_memory.subspace_cosine(G, d, rank + 1)


def test_property_vector_is_the_unit_difference_of_class_means():
    emb = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
    d, length = lstm_memory.property_vector(emb, [0, 1], [2, 3])               # (2, 0) - (0, 3)
    np.testing.assert_allclose(d, np.array([2.0, -3.0]) / np.sqrt(13))
    assert np.isclose(length, np.sqrt(13))
    with pytest.raises(ValueError):
        lstm_memory.property_vector(emb, [], [1])
    with pytest.raises(ValueError, match="same mean"):
        lstm_memory.property_vector(emb, [0, 1], [1, 0])


@given(matrices)
def test_whitening_leaves_the_map_from_embeddings_to_state_unchanged(args):
    seed, H, E = args
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(50, E)) @ rng.normal(size=(E, E))         # correlated embeddings
    G = rng.normal(size=(H, E))
    D = lstm_memory.whitening(emb)
    white = np.linalg.solve(D, (emb - emb.mean(0)).T).T               # D^-1 e
    np.testing.assert_allclose(np.cov(white.T), np.eye(E), atol=1e-8)
    np.testing.assert_allclose(lstm_memory.whiten_gradient(G, D) @ np.linalg.solve(D, emb.T), G @ emb.T,
                               atol=1e-8)
    # the whitened difference is the difference of the whitened class means
    a, b = [0, 1, 2], [3, 4]
    d, length = lstm_memory.property_vector(emb, a, b)
    d_white, length_white = lstm_memory.property_vector(white, a, b)
    np.testing.assert_allclose(lstm_memory.whiten_vector(length * d, D), length_white * d_white, atol=1e-8)


def test_the_demo_prints_forward_mode_next_to_finite_differences():
    """``python lstm_memory.py``, the first thing a reader runs."""
    import re
    import subprocess
    import sys
    out = subprocess.run([sys.executable, lstm_memory.__file__], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert float(re.search(r"plain vs finite differences: (\S+)", out.stdout).group(1)) < 1e-8
    assert float(re.search(r"fast vs plain: (\S+)", out.stdout).group(1)) < 1e-12
    assert "sigma_1" in out.stdout


@pytest.mark.skipif(not lstm_memory.gpu_available(), reason="needs CuPy and a CUDA device")
def test_cupy_backend_matches_numpy():
    import cupy
    rng = np.random.default_rng(7)
    params = lstm_memory.init_params(13, 4, 6, seed=7, scale=0.5, dtype=np.float64)
    params["b"] += rng.normal(0, 0.5, 24)
    streams = rng.integers(0, 13, (3, 12))
    labels = {"tag": rng.integers(-1, 2, (3, 12))}
    on_gpu = {k: cupy.asarray(v) for k, v in params.items()}
    cpu = lstm_memory.sweep_state_gradients(params, streams, labels, {"tag": ["a", "b"]}, K=4)
    gpu = lstm_memory.sweep_state_gradients(on_gpu, streams, labels, {"tag": ["a", "b"]}, K=4)
    for state in "ch":
        np.testing.assert_allclose(gpu.G_bar_per_class("tag", state),
                                   cpu.G_bar_per_class("tag", state), rtol=1e-6)
    h0 = rng.normal(size=(3, 6))
    inputs, targets = streams[:, :5], streams[:, 1:6]
    loss, grads, _ = lstm_memory.lm_loss_and_grads(params, inputs, targets, h0, h0)
    loss_gpu, grads_gpu, _ = lstm_memory.lm_loss_and_grads(on_gpu, cupy.asarray(inputs),
                                                  cupy.asarray(targets), cupy.asarray(h0),
                                                  cupy.asarray(h0))
    assert np.isclose(loss, loss_gpu)
    for name in grads:
        np.testing.assert_allclose(lstm_memory.to_numpy(grads_gpu[name]), grads[name], rtol=1e-6, atol=1e-9)
