"""Every reverse-mode derivative of the LM and of CBOW against central finite differences (float64)."""
import numpy as np
from hypothesis import given, strategies as st

import lstm_memory
import word2vec
from tool import parallel
from conftest import numerical_gradient, random_lstm

TOL = dict(rtol=1e-5, atol=1e-7)
dims = st.integers(min_value=1, max_value=4)


@given(seed=st.integers(0, 10**6), B=dims, E=dims, H=dims)
def test_lstm_step_backward_matches_finite_differences(seed, B, E, H):
    rng, W_x, W_h, b, h0, c0 = random_lstm(seed, B, E, H)
    x = rng.normal(size=(B, E))
    u_h, u_c = rng.normal(size=(B, H)), rng.normal(size=(B, H))   # L = <u_h, h> + <u_c, c>

    def loss():
        h, c, _ = lstm_memory.lstm_step_forward(x, h0, c0, W_x, W_h, b)
        return np.sum(u_h * h) + np.sum(u_c * c)

    _, _, cache = lstm_memory.lstm_step_forward(x, h0, c0, W_x, W_h, b)
    dz, dh_prev, dc_prev = lstm_memory.lstm_step_backward(u_h, u_c, cache)
    dx, dW_x, dW_h, db = dz @ W_x, dz.T @ x, dz.T @ h0, dz.sum(axis=0)    # as lstm_backward forms them
    for analytic, array in [(dx, x), (dh_prev, h0), (dc_prev, c0), (dW_x, W_x), (dW_h, W_h), (db, b)]:
        np.testing.assert_allclose(analytic, numerical_gradient(lambda _: loss(), array), **TOL)


@given(seed=st.integers(0, 10**6), B=dims, E=dims, H=dims, T=st.integers(1, 5), workers=st.integers(1, 3))
def test_window_bptt_with_carried_state_and_fixed_dropout(seed, B, E, H, T, workers):
    """The whole LM loss over a window: every parameter, state carried in, a fixed dropout mask;
    the streams on one thread or split among ``workers`` threads."""
    rng = np.random.default_rng(seed)
    V = int(rng.integers(2, 8))
    params = lstm_memory.init_params(V, E, H, seed=seed, scale=0.5, dtype=np.float64)
    for name in params:                                  # non-zero biases too
        params[name] += rng.normal(0, 0.3, params[name].shape)
    inputs, targets = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    h0, c0 = rng.normal(size=(B, H)), rng.normal(size=(B, H))
    mask = (rng.random((B, T, H)) > 0.5) / 0.5

    def loss(_):
        return parallel.lm_loss_and_grads(params, inputs, targets, h0, c0, mask, backward=False,
                                          workers=workers)[0]

    value, grads, _ = parallel.lm_loss_and_grads(params, inputs, targets, h0, c0, mask,
                                                 workers=workers)
    one_value, one_thread, _ = lstm_memory.lm_loss_and_grads(params, inputs, targets, h0, c0, mask)
    assert np.isclose(value, one_value, rtol=1e-12)
    no_mask = [parallel.lm_loss_and_grads(params, inputs, targets, h0, c0, backward=False,
                                          workers=n) for n in (1, workers)]
    assert np.isclose(no_mask[0][0], no_mask[1][0], rtol=1e-12)
    np.testing.assert_allclose(no_mask[0][2][1], no_mask[1][2][1], rtol=1e-12)   # c_T
    for name in params:
        np.testing.assert_allclose(grads[name], numerical_gradient(loss, params[name]), **TOL,
                                   err_msg=name)
        np.testing.assert_allclose(grads[name], one_thread[name], rtol=1e-12, atol=1e-15)


@given(seed=st.integers(0, 10**6), N=dims, V=st.integers(2, 6))
def test_softmax_cross_entropy_gradient(seed, N, V):
    rng = np.random.default_rng(seed)
    logits, targets = rng.normal(0, 3, (N, V)), rng.integers(0, V, N)
    loss, dlogits = lstm_memory.softmax_cross_entropy(logits.copy(), targets)
    numeric = numerical_gradient(lambda a: lstm_memory.softmax_cross_entropy(a.copy(), targets)[0], logits)
    np.testing.assert_allclose(dlogits, numeric, **TOL)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert np.isclose(loss, -np.log(p[np.arange(N), targets]).mean())


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [5e3, 5e3, 0.0]], dtype=np.float32)
    loss, dlogits = lstm_memory.softmax_cross_entropy(logits, np.array([1, 0]))
    assert np.isfinite(loss) and np.all(np.isfinite(dlogits))
    assert np.isclose(loss, (1e4 + np.log(2)) / 2, rtol=1e-6)
    np.testing.assert_allclose(dlogits.sum(axis=1), 0.0, atol=1e-6)   # p - onehot sums to 0


@given(seed=st.integers(0, 10**6), N=st.integers(1, 4), E=dims, window=st.integers(1, 3),
       k=st.integers(1, 3))
def test_cbow_gradients_match_finite_differences(seed, N, E, window, k):
    """dL/dh (the context mean, which word2vec adds to every context vector) and dL/dW_out."""
    rng = np.random.default_rng(seed)
    V = int(rng.integers(3, 9))
    W_in, W_out = rng.normal(size=(V, E)), rng.normal(size=(V, E))
    contexts = rng.integers(0, V, (N, 2 * window))
    mask = (rng.random((N, 2 * window)) < 0.7).astype(np.float64)
    mask[:, 0] = 1.0                                                   # at least one context word
    centers, negatives = rng.integers(0, V, N), rng.integers(0, V, (N, k))
    h = word2vec.context_mean(W_in, contexts, mask)

    def loss(_):
        return word2vec.cbow_loss_and_grads(h, W_out, centers, negatives)[0]

    _, dh, dW_out = word2vec.cbow_loss_and_grads(h, W_out, centers, negatives)
    np.testing.assert_allclose(dh, numerical_gradient(loss, h), **TOL)
    np.testing.assert_allclose(dW_out, numerical_gradient(loss, W_out), **TOL)
