"""The GRU and the vanilla RNN of cells.py (float64): the forward step against the equations written
out gate by gate, reverse mode (step, window BPTT, the LM loss) against central finite differences,
the plain tangent step against finite differences and against reverse mode, the folded fast step
against the plain one, and the cells behind the LSTM's interface (c carried through, the sweep)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import cells
import lstm_memory
from conftest import numerical_gradient

TOL = dict(rtol=1e-5, atol=1e-7)
dims = st.integers(min_value=1, max_value=4)
each_cell = pytest.mark.parametrize("cell", [cells.GRU, cells.RNN], ids=lambda cell: cell.name)


def random_cell(seed, cell, B, E, H):
    """Weights, non-zero biases and a non-zero incoming state: gate mix-ups cannot hide."""
    rng = np.random.default_rng(seed)
    G = cell.gates
    W_x = rng.normal(0, 0.5, (G * H, E))
    W_h = rng.normal(0, 0.5, (G * H, H))
    b = rng.normal(0, 0.5, G * H)
    h0 = rng.uniform(-0.9, 0.9, (B, H))
    return rng, W_x, W_h, b, h0


def equations(cell, x, h, W_x, W_h, b):
    """One stream's step written out gate by gate (x (E,), h (H,)), independently of cells.py."""
    if cell is cells.RNN:
        return np.tanh(W_x @ x + W_h @ h + b)
    W_xr, W_xu, W_xn = np.split(W_x, 3)                   # gate order r, u, n
    W_hr, W_hu, W_hn = np.split(W_h, 3)
    b_r, b_u, b_n = np.split(b, 3)
    r = 1 / (1 + np.exp(-(W_xr @ x + W_hr @ h + b_r)))
    u = 1 / (1 + np.exp(-(W_xu @ x + W_hu @ h + b_u)))
    n = np.tanh(W_xn @ x + W_hn @ (r * h) + b_n)          # reset before W_hn (TensorFlow, Cho)
    return u * h + (1 - u) * n


def run_windows(cell, X, h0, W_x, W_h, b, K, window, fast=False):
    """Forward mode over X (B, T, E) in windows of ``window`` steps, carrying h and the tangents
    across the boundaries: Jh_{T-1,k} = dh_{T-1}/dx_{T-1-k} (B, K+1, H, E) by the plain tangent
    step (or the fast one)."""
    B, T, E = X.shape
    H = W_h.shape[1]
    Jh = np.zeros((B, K + 1, H, E))
    J, J_next = np.zeros((B, 1, K + 1, E, H)), np.empty((B, 1, K + 1, E, H))
    h = h0
    for start in range(0, T, window):
        _, h, caches = cells.window_forward(cell, X[:, start:start + window], h, W_x, W_h, b)
        for cache in caches:
            if fast:
                J, J_next = cell.tangent_step_fast_in_place(J, cache, W_x, W_h, out=J_next), J
            else:
                Jh = cell.tangent_step(Jh, cache, W_x, W_h)
    return J[:, 0].transpose(0, 1, 3, 2) if fast else Jh


@each_cell
@given(seed=st.integers(0, 10**6), B=dims, E=dims, H=dims, T=st.integers(1, 6))
def test_forward_follows_the_equations(cell, seed, B, E, H, T):
    rng, W_x, W_h, b, h0 = random_cell(seed, cell, B, E, H)
    X = rng.normal(size=(B, T, E))
    hs, h_T, _ = cells.window_forward(cell, X, h0, W_x, W_h, b)
    for s in range(B):
        h = h0[s]
        for t in range(T):
            h = equations(cell, X[s, t], h, W_x, W_h, b)
            np.testing.assert_allclose(hs[s, t], h, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(h_T, hs[:, -1])
    h_step, _ = cell.step_forward_pure(X[:, 0], h0, W_x, W_h, b)
    np.testing.assert_allclose(h_step, hs[:, 0], rtol=1e-12, atol=1e-14)


@each_cell
@given(seed=st.integers(0, 10**6), B=dims, E=dims, H=dims)
def test_step_backward_matches_finite_differences(cell, seed, B, E, H):
    rng, W_x, W_h, b, h0 = random_cell(seed, cell, B, E, H)
    x, u = rng.normal(size=(B, E)), rng.normal(size=(B, H))          # L = <u, h>

    def loss(_):
        return np.sum(u * cell.step_forward_pure(x, h0, W_x, W_h, b)[0])

    _, cache = cell.step_forward_pure(x, h0, W_x, W_h, b)
    da, dh_prev = cell.step_backward(u, cache)
    G = cell.gates
    dW_h = np.concatenate([da[:, g * H:(g + 1) * H].T @ cache["h_in"][:, g] for g in range(G)])
    for analytic, array in [(da @ W_x, x), (dh_prev, h0), (da.T @ x, W_x), (dW_h, W_h),
                            (da.sum(axis=0), b)]:
        np.testing.assert_allclose(analytic, numerical_gradient(loss, array), **TOL)


@each_cell
@given(seed=st.integers(0, 10**6), B=dims, E=dims, H=dims, T1=st.integers(1, 3),
       T2=st.integers(1, 3))
def test_window_bptt_with_a_carried_state(cell, seed, B, E, H, T1, T2):
    """Two consecutive windows, the state of the first carried into the second; the loss reads
    every h_t of both and the final state, its gradient w.r.t. every input, h0 and weight."""
    rng, W_x, W_h, b, h0 = random_cell(seed, cell, B, E, H)
    X = rng.normal(size=(B, T1 + T2, E))
    U, u_T = rng.normal(size=(B, T1 + T2, H)), rng.normal(size=(B, H))

    def loss(_):
        hs1, h1, _ = cells.window_forward(cell, X[:, :T1], h0, W_x, W_h, b)
        hs2, h2, _ = cells.window_forward(cell, X[:, T1:], h1, W_x, W_h, b)
        return np.sum(U[:, :T1] * hs1) + np.sum(U[:, T1:] * hs2) + np.sum(u_T * h2)

    _, h1, caches1 = cells.window_forward(cell, X[:, :T1], h0, W_x, W_h, b)
    _, _, caches2 = cells.window_forward(cell, X[:, T1:], h1, W_x, W_h, b)
    dX2, dh1, grads2 = cells.window_backward(cell, U[:, T1:], u_T, caches2)
    dX1, dh0, grads1 = cells.window_backward(cell, U[:, :T1], dh1, caches1)
    np.testing.assert_allclose(np.concatenate([dX1, dX2], axis=1), numerical_gradient(loss, X),
                               **TOL)
    np.testing.assert_allclose(dh0, numerical_gradient(loss, h0), **TOL)
    for name, array in (("W_x", W_x), ("W_h", W_h), ("b", b)):
        np.testing.assert_allclose(grads1[name] + grads2[name], numerical_gradient(loss, array),
                                   **TOL, err_msg=name)


@each_cell
@given(seed=st.integers(0, 10**6), B=dims, E=dims, H=dims, T=st.integers(1, 3))
def test_lm_loss_passes_c_through_and_matches_finite_differences(cell, seed, B, E, H, T):
    """The LM (embedding, cell, dropout, softmax) with the cell through the LSTM's interface:
    c comes back as it went in (and dc_T as it came), every parameter's gradient is right."""
    rng, W_x, W_h, b, h0 = random_cell(seed, cell, B, E, H)
    V = int(rng.integers(2, 6))
    params = {"embedding": rng.normal(size=(V, E)), "W_x": W_x, "W_h": W_h, "b": b,
              "W_out": rng.normal(0, 0.5, (V, H)), "b_out": rng.normal(0, 0.5, V)}
    inputs, targets = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    c0 = rng.normal(size=(B, H))
    mask = (rng.random((B, T, H)) > 0.5) / 0.5

    def loss(_):
        return lstm_memory.lm_loss_and_grads(params, inputs, targets, h0, c0, mask, backward=False,
                                             cell=cell)[0]

    _, grads, (h_T, c_T) = lstm_memory.lm_loss_and_grads(params, inputs, targets, h0, c0, mask,
                                                         cell=cell)
    assert c_T is c0
    for name in params:
        np.testing.assert_allclose(grads[name], numerical_gradient(loss, params[name]), **TOL,
                                   err_msg=name)
    X = params["embedding"][inputs]
    hs, (h_end, c_end), caches = cell.forward(X, h0, c0, W_x, W_h, b)
    assert c_end is c0
    np.testing.assert_array_equal(h_end, h_T)
    h, c, _ = cell.step_forward(X[:, 0], h0, c0, W_x, W_h, b)
    assert c is c0
    np.testing.assert_allclose(h, hs[:, 0], rtol=1e-12, atol=1e-14)
    dhs, dh_T, dc_T = rng.normal(size=(B, T, H)), rng.normal(size=(B, H)), rng.normal(size=(B, H))
    dX, dh0, dc0, cell_grads = cell.backward(dhs, dh_T, dc_T, caches)
    assert dc0 is dc_T
    dX_w, dh0_w, grads_w = cells.window_backward(cell, dhs, dh_T, caches)
    np.testing.assert_array_equal(dX, dX_w)
    np.testing.assert_array_equal(dh0, dh0_w)
    assert sorted(cell_grads) == ["W_h", "W_x", "b"]


across_windows = given(seed=st.integers(0, 10**6), B=dims, E=dims, H=dims, T=st.integers(1, 6),
                       window=st.integers(1, 4))


def tangents_across_windows(cell, seed, B, E, H, T, window):
    """A random cell, inputs X (B, T, E) and the plain step's Jh (B, T, H, E) over windows of
    ``window`` steps, for the two tests that check Jh (against FD and against reverse mode)."""
    rng, W_x, W_h, b, h0 = random_cell(seed, cell, B, E, H)
    X = rng.normal(size=(B, T, E))
    return rng, W_x, W_h, b, h0, X, run_windows(cell, X, h0, W_x, W_h, b, T - 1, window)


@each_cell
@across_windows
def test_forward_mode_matches_finite_differences_across_windows(cell, seed, B, E, H, T, window):
    """The plain step's Jh_{T-1,k} against central differences of h_{T-1} w.r.t. x_{T-1-k}."""
    rng, W_x, W_h, b, h0, X, Jh = tangents_across_windows(cell, seed, B, E, H, T, window)
    K = T - 1
    for k in range(K + 1):
        def final_state(x):
            Xk = X.copy()
            Xk[:, T - 1 - k] = x
            return cells.window_forward(cell, Xk, h0, W_x, W_h, b)[1]       # (B, H)

        numeric = numerical_gradient(final_state, X[:, T - 1 - k].copy())  # (B, H, B, E)
        per_stream = numeric[np.arange(B), :, np.arange(B), :]              # (B, H, E)
        np.testing.assert_allclose(Jh[:, k], per_stream, **TOL, err_msg=f"k = {k}")


@each_cell
@across_windows
def test_forward_mode_equals_reverse_mode(cell, seed, B, E, H, T, window):
    """<u, Jh_{T-1,k} v> = <Jh^T u, v>: Jh^T u from BPTT (window_backward with dh_T = u)."""
    rng, W_x, W_h, b, h0, X, Jh = tangents_across_windows(cell, seed, B, E, H, T, window)
    _, _, caches = cells.window_forward(cell, X, h0, W_x, W_h, b)
    u, v = rng.normal(size=(B, H)), rng.normal(size=(B, T, E))
    dX, _, _ = cells.window_backward(cell, np.zeros((B, T, H)), u, caches)   # dX[:, s] = Jh^T u
    for k in range(T):
        forward = np.einsum("bh,bhe,be->", u, Jh[:, k], v[:, T - 1 - k])
        reverse = np.einsum("be,be->", dX[:, T - 1 - k], v[:, T - 1 - k])
        assert np.isclose(forward, reverse, rtol=1e-9, atol=1e-12), k


@each_cell
@given(seed=st.integers(0, 10**6), B=dims, E=dims, H=dims, K=st.integers(0, 4))
def test_fast_tangent_step_equals_the_plain_step(cell, seed, B, E, H, K):
    """One step from random (non-zero) tangents: the folded, transposed step is the plain one."""
    rng, W_x, W_h, b, h0 = random_cell(seed, cell, B, E, H)
    _, cache = cell.step_forward_pure(rng.normal(size=(B, E)), h0, W_x, W_h, b)
    Jh_prev = rng.normal(size=(B, K + 1, H, E))
    Jh = cell.tangent_step(Jh_prev, cache, W_x, W_h)
    J_prev = np.ascontiguousarray(Jh_prev.transpose(0, 1, 3, 2)[:, None])    # (B, 1, K+1, E, H)
    J = cell.tangent_step_fast_in_place(J_prev, cache, W_x, W_h, out=np.empty_like(J_prev))
    np.testing.assert_allclose(J[:, 0].transpose(0, 1, 3, 2), Jh, rtol=1e-10, atol=1e-12)
    M_x, M_h = cell.fold(cache, W_x, W_h)                # dh_t/dx_t and dh_t/dh_{t-1}
    np.testing.assert_allclose(M_x, Jh[:, 0], rtol=1e-10, atol=1e-12)
    if K >= 1:
        np.testing.assert_allclose(M_h @ Jh_prev[:, 0], Jh[:, 1], rtol=1e-10, atol=1e-12)


@each_cell
@given(seed=st.integers(0, 10**6), B=dims, E=dims, H=dims, T=st.integers(1, 12),
       K=st.integers(0, 6), window=st.integers(1, 4))
def test_fast_and_plain_sweeps_agree_across_windows(cell, seed, B, E, H, T, K, window):
    rng, W_x, W_h, b, h0 = random_cell(seed, cell, B, E, H)
    X = rng.normal(size=(B, T, E))
    np.testing.assert_allclose(run_windows(cell, X, h0, W_x, W_h, b, K, window, fast=True),
                               run_windows(cell, X, h0, W_x, W_h, b, K, window),
                               rtol=1e-10, atol=1e-12)


@each_cell
def test_the_fast_step_refuses_to_write_into_its_input(cell):
    rng, W_x, W_h, b, h0 = random_cell(0, cell, 2, 3, 4)
    _, cache = cell.step_forward_pure(rng.normal(size=(2, 3)), h0, W_x, W_h, b)
    J = np.zeros((2, 1, 3, 3, 4))
    with pytest.raises(ValueError, match="other than J_prev"):
        cell.tangent_step_fast_in_place(J, cache, W_x, W_h, out=J)
    with pytest.raises(ValueError, match="C-contiguous"):
        cell.tangent_step_fast_in_place(J, cache, W_x, W_h,
                                        out=np.zeros((2, 1, 3, 4, 3)).swapaxes(3, 4))


@each_cell
def test_sweep_averages_the_plain_tangents(cell):
    """lstm_memory's sweep, given the cell, sums the fast step's Jh; its Gbar_k (state h) is the
    mean over positions t >= k of the plain step's Jh_{t,k}, and a one-state cell has no c."""
    rng = np.random.default_rng(4)
    V, E, H, B, N, K = 7, 3, 4, 2, 11, 3
    _, W_x, W_h, b, _ = random_cell(4, cell, B, E, H)
    params = {"embedding": rng.normal(size=(V, E)), "W_x": W_x, "W_h": W_h, "b": b}
    streams = rng.integers(0, V, (B, N))
    sums = lstm_memory.sweep_state_gradients(params, streams, {}, {}, K, window=4, cell=cell)
    Jh, total = np.zeros((B, K + 1, H, E)), np.zeros((K + 1, H, E))
    _, _, caches = cells.window_forward(cell, params["embedding"][streams], np.zeros((B, H)), W_x,
                                        W_h, b)
    for cache in caches:
        Jh = cell.tangent_step(Jh, cache, W_x, W_h)
        total += Jh.sum(axis=0)                           # Jh_{t,k} = 0 while t < k
    counts = B * (N - np.arange(K + 1))
    np.testing.assert_array_equal(sums.count()[0], counts)
    np.testing.assert_allclose(sums.G_bar("h"), total / counts[:, None, None], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        sums.G_bar("c")
    assert cells.CELLS == {"lstm": lstm_memory.LSTM, "gru": cells.GRU, "rnn": cells.RNN}


@pytest.mark.skipif(not lstm_memory.gpu_available(), reason="needs CuPy and a CUDA device")
@each_cell
def test_cupy_backend_matches_numpy(cell):
    import cupy
    rng, W_x, W_h, b, h0 = random_cell(7, cell, 3, 4, 5)
    X, dhs = rng.normal(size=(3, 6, 4)), rng.normal(size=(3, 6, 5))
    gpu = [cupy.asarray(a) for a in (X, h0, W_x, W_h, b, dhs)]
    hs, h_T, caches = cells.window_forward(cell, X, h0, W_x, W_h, b)
    hs_gpu, h_T_gpu, caches_gpu = cells.window_forward(cell, *gpu[:5])
    np.testing.assert_allclose(hs_gpu.get(), hs, rtol=1e-10)
    dX, dh0, grads = cells.window_backward(cell, dhs, h0, caches)
    dX_gpu, dh0_gpu, grads_gpu = cells.window_backward(cell, gpu[5], gpu[1], caches_gpu)
    np.testing.assert_allclose(dX_gpu.get(), dX, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dh0_gpu.get(), dh0, rtol=1e-10, atol=1e-12)
    for name in grads:
        np.testing.assert_allclose(grads_gpu[name].get(), grads[name], rtol=1e-10, atol=1e-12)
    J, J_gpu = np.zeros((3, 1, 4, 4, 5)), cupy.zeros((3, 1, 4, 4, 5))
    for cache, cache_gpu in zip(caches, caches_gpu):
        J = cell.tangent_step_fast_in_place(J, cache, W_x, W_h, out=np.empty_like(J))
        J_gpu = cell.tangent_step_fast_in_place(J_gpu, cache_gpu, gpu[2], gpu[3],
                                                out=cupy.empty_like(J_gpu))
    np.testing.assert_allclose(J_gpu.get(), J, rtol=1e-10, atol=1e-12)
