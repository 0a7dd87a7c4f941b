"""State gradients for RNN memory analysis (Verwimp et al., Interspeech 2018), from scratch.

Read top to bottom, like the paper:

  1. backend          NumPy or CuPy behind one name, ``xp``
  2. parameters       the LSTM language model's arrays and their shapes
  3. softmax loss     cross-entropy with the max shift, the output layer on top of the LSTM
  4. LSTM step        forward and backward of one time step (gate order i, f, g, o)
  5. BPTT             a whole window forward and backward, the LM loss and its gradients
                      (on a CPU, the streams split among threads)
  6. word2vec CBOW    the loss and gradients of the embeddings of the paper's second LM
  7. state gradients  forward-mode tangents Jc_{t,k} = dc_t/dx_{t-k}, Jh_{t,k} = dh_t/dx_{t-k}
                      and their streaming averages over positions and word classes
  8. measures         SVD of the average gradient (eq. 1), property vectors (eq. 2),
                      cos(d, H_n) (eq. 3-4), relative memory m (eq. 5-6), whitening
  9. demo             ``python lstm_memory.py``: forward mode next to finite differences, then eq. 1

Checkpoints (one .npz per model, written whole, refused with one sentence when wrong) are in
checkpointing.py, with the tool's other modules.

Letters: B streams, T steps per window, E embedding size, H state size, V vocabulary, K largest delay.
``dX`` is always dLoss/dX; forward-mode tangents are ``Jc`` and ``Jh``.
"""
from __future__ import annotations

import functools

import numpy as np

try:  # CuPy is optional: everything below also runs on NumPy.
    import cupy
except ImportError:  # pragma: no cover - depends on the machine
    cupy = None


# ----------------------------------------------------------------------------------------------
# 1. Backend
# ----------------------------------------------------------------------------------------------

def gpu_available() -> bool:
    """True when CuPy is installed and sees at least one CUDA device."""
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CuPy present but no driver/device
        return False


def get_backend(device: str = "auto"):
    """Return the array module for ``device`` in {'auto', 'cpu', 'gpu'}: numpy or cupy."""
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"--device must be auto, cpu or gpu, not {device!r}")
    if device == "cpu" or (device == "auto" and not gpu_available()):
        return np
    if not gpu_available():
        raise RuntimeError("--device gpu was asked for, but CuPy or a CUDA device is missing "
                           "(pip install cupy-cuda12x, or use --device cpu)")
    return cupy


def get_array_module(*arrays):
    """numpy or cupy, whichever holds ``arrays`` (CuPy's own idiom, without requiring CuPy)."""
    return cupy.get_array_module(*arrays) if cupy is not None else np


def to_numpy(a):
    """A NumPy copy of ``a`` (a no-op for NumPy arrays), for matplotlib, sklearn and saving."""
    return a.get() if hasattr(a, "get") else np.asarray(a)


def synchronize(xp) -> None:
    """Wait for the GPU to finish (call before reading a clock); nothing on NumPy."""
    if xp is not np:
        xp.cuda.Stream.null.synchronize()


@functools.lru_cache(maxsize=None)
def thread_pool(workers: int):
    """A pool of ``workers`` threads, made once and kept (the BLAS library gives every new thread
    a buffer of its own, so fresh threads for every window would cost that each time)."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(workers)


def map_stream_blocks(fn, B: int, workers: int) -> list:
    """[fn(rows) for each block of rows], the B streams cut into ``workers`` contiguous blocks
    (index arrays, by np.array_split), each block on its own thread with one BLAS thread.

    NumPy releases the GIL, so on a CPU with W cores W workers keep every core busy, also in the
    element-wise work that NumPy runs on one core; an idle BLAS thread would spin for a while after
    each product and take a core from them, so BLAS stays on one thread meanwhile.
    """
    from threadpoolctl import threadpool_limits

    blocks = np.array_split(np.arange(B), min(workers, B))
    with threadpool_limits(limits=1, user_api="blas"):
        return list(thread_pool(len(blocks)).map(fn, blocks))


def scatter_add_rows(target, rows, values) -> None:
    """target[rows[n]] += values[n] for every n, repeated rows summed (embedding gradients)."""
    get_array_module(target).add.at(target, rows, values)     # cupy.add.at on a GPU


# ----------------------------------------------------------------------------------------------
# 2. Parameters
# ----------------------------------------------------------------------------------------------

PARAM_SHAPES = {  # name -> shape in letters; gate order i, f, g, o along the 4H axis
    "embedding": ("V", "E"),
    "W_x": ("4H", "E"),
    "W_h": ("4H", "H"),
    "b": ("4H",),
    "W_out": ("V", "H"),
    "b_out": ("V",),
}


def init_params(V: int, E: int, H: int, seed: int = 0, scale: float = 0.05,
                dtype=np.float32, xp=np) -> dict:
    """Uniform(-scale, scale) weights, zero biases (forget-gate bias 0, as in the paper's set-up)."""
    rng = np.random.default_rng(seed)
    sizes = {"V": V, "E": E, "H": H, "4H": 4 * H}
    params = {}
    for name, letters in PARAM_SHAPES.items():
        shape = tuple(sizes[s] for s in letters)
        value = np.zeros(shape) if name in ("b", "b_out") else rng.uniform(-scale, scale, shape)
        params[name] = xp.asarray(value, dtype=dtype)
    return params


def sigmoid(x):
    xp = get_array_module(x)
    return 0.5 * (xp.tanh(0.5 * x) + 1.0)  # = 1 / (1 + exp(-x)), without overflow


# ----------------------------------------------------------------------------------------------
# 3. Softmax cross-entropy
# ----------------------------------------------------------------------------------------------

def softmax_cross_entropy(logits, targets, n_total: int | None = None):
    """Mean cross-entropy of ``targets`` under softmax(``logits``), and its gradient.

    Equations:
        p = exp(a - max a) / sum exp(a - max a)          (the max shift keeps exp finite)
        L = mean_n [ log sum_j exp(a_nj) - a_n,target ]
        dL/da = (p - onehot(target)) / N

    Args:
        logits: (n, V), overwritten with dL/dlogits to save a 40 MB copy per window.
        targets: (n,) integer ids.
        n_total: N, when these n rows are a block of the N the mean is over (default: n); the
            loss returned is then the block's share of the mean.
    Returns:
        loss (Python float), dlogits (n, V) (the same buffer as ``logits``).
    """
    xp = get_array_module(logits)
    N = logits.shape[0] if n_total is None else n_total
    rows = xp.arange(logits.shape[0])
    logits -= logits.max(axis=1, keepdims=True)       # (n, V) max shift
    target_logit = logits[rows, targets].copy()        # (n,)
    xp.exp(logits, out=logits)                         # (n, V) unnormalised p
    total = logits.sum(axis=1, keepdims=True)          # (n, 1)
    loss = float((xp.log(total[:, 0]) - target_logit).sum()) / N
    logits *= 1.0 / (total * N)                        # p / N
    logits[rows, targets] -= 1.0 / N                   # (p - onehot) / N
    return loss, logits


def output_layer(h, targets, W_out, b_out, n_total: int, backward: bool = True):
    """The softmax layer on n of the N rows: a = W_out h + b_out, cross-entropy, and gradients.

    Args:
        h: (n, H) LSTM outputs.   targets: (n,) ids.   W_out: (V, H).   b_out: (V,).
        n_total: N, the rows the loss is averaged over.   backward: False for the loss only.
    Returns:
        the rows' share of the mean loss, {'W_out': (V, H), 'b_out': (V,)} and dL/dh (n, H)
        (both None without backward).
    """
    logits = h @ W_out.T                                               # (n, V)
    logits += b_out                                                    # in place: 40 MB less
    loss, dlogits = softmax_cross_entropy(logits, targets, n_total)
    if not backward:
        return loss, None, None
    grads = {"W_out": dlogits.T @ h, "b_out": dlogits.sum(axis=0)}     # through a = W_out h + b
    return loss, grads, dlogits @ W_out                                # (n, H)


# ----------------------------------------------------------------------------------------------
# 4. LSTM step
# ----------------------------------------------------------------------------------------------

def lstm_step_forward(x, h_prev, c_prev, W_x, W_h, b):
    """One LSTM step on a batch.

    Equations (gate order i, f, g, o along the 4H axis):
        z_t = W_x x_t + W_h h_{t-1} + b
        i = sigmoid(z_i), f = sigmoid(z_f), g = tanh(z_g), o = sigmoid(z_o)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    Args:
        x: (B, E) input embeddings x_t.   h_prev, c_prev: (B, H) state at t-1.
        W_x: (4H, E).   W_h: (4H, H).   b: (4H,).
    Returns:
        h (B, H), c (B, H), cache (everything the backward pass and the tangents need).
    """
    z = x @ W_x.T + h_prev @ W_h.T + b                          # (B, 4H)
    return lstm_cell(z, x, h_prev, c_prev, W_x, W_h)


def lstm_cell(z, x, h_prev, c_prev, W_x, W_h):
    """``lstm_step_forward`` from z_t on: the gates and the new state.

    Args:
        z: (B, 4H) pre-activation z_t.   c_prev: (B, H) cell state at t-1.
        x (B, E), h_prev (B, H), W_x (4H, E), W_h (4H, H): only kept in the cache (backward pass).
    Returns:
        h (B, H), c (B, H), cache, as ``lstm_step_forward``.
    """
    xp = get_array_module(z)
    H = h_prev.shape[1]
    i = sigmoid(z[:, :H])                                       # (B, H)
    f = sigmoid(z[:, H:2 * H])                                  # (B, H)
    g = xp.tanh(z[:, 2 * H:3 * H])                              # (B, H)
    o = sigmoid(z[:, 3 * H:])                                   # (B, H)
    c = f * c_prev + i * g                                      # (B, H)
    tanh_c = xp.tanh(c)                                         # (B, H)
    h = o * tanh_c                                              # (B, H)
    cache = dict(x=x, h_prev=h_prev, c_prev=c_prev, i=i, f=f, g=g, o=o, tanh_c=tanh_c,
                 W_x=W_x, W_h=W_h)
    return h, c, cache


def lstm_step_backward(dh, dc, cache):
    """Backward of ``lstm_step_forward`` down to its gates: from dL/dh_t and dL/dc_t (the part not
    via h_t) to dL/dz_t and the gradients of the state it read.

    Equations (each line below names the node the gradient flows through):
        dc_total = dc + dh * o * (1 - tanh^2 c_t)
        dz_i = dc_total g i (1 - i)      dz_f = dc_total c_{t-1} f (1 - f)
        dz_g = dc_total i (1 - g^2)      dz_o = dh tanh(c_t) o (1 - o)
        dh_{t-1} = dz W_h,  dc_{t-1} = dc_total f
    The other gradients follow from dz alone: dx_t = dz W_x, dW_x = dz^T x_t, dW_h = dz^T h_{t-1},
    db = sum_batch dz; ``lstm_backward`` forms them for all steps of a window in one product each.

    Args:
        dh, dc: (B, H).   cache: from the forward step.
    Returns:
        dz (B, 4H), dh_prev (B, H), dc_prev (B, H).
    """
    xp = get_array_module(dh)
    i, f, g, o, tanh_c = cache["i"], cache["f"], cache["g"], cache["o"], cache["tanh_c"]
    do = dh * tanh_c                                            # through h = o * tanh(c)
    dc_total = dc + dh * o * (1.0 - tanh_c ** 2)                # through tanh(c) into c
    dz = xp.concatenate([
        dc_total * g * i * (1.0 - i),                           # through c = ... + i g, sigmoid
        dc_total * cache["c_prev"] * f * (1.0 - f),             # through c = f c_prev + ..., sigmoid
        dc_total * i * (1.0 - g ** 2),                          # through c = ... + i g, tanh
        do * o * (1.0 - o),                                     # through sigmoid(z_o)
    ], axis=1)                                                  # (B, 4H)
    dh_prev = dz @ cache["W_h"]                                 # through W_h h_prev
    dc_prev = dc_total * f                                      # through f * c_prev
    return dz, dh_prev, dc_prev


# ----------------------------------------------------------------------------------------------
# 5. Backpropagation through time over one window, and the language-model loss
# ----------------------------------------------------------------------------------------------

def lstm_forward(X, h0, c0, W_x, W_h, b):
    """Run ``lstm_step_forward`` over a window, with the input part W_x x_t + b of every z_t in
    one product (and W_h^T copied once into the layout its product with h runs fastest in).

    Args:
        X: (B, T, E) input embeddings.   h0, c0: (B, H) state carried in from the previous window.
    Returns:
        hs (B, T, H) all hidden states, (h_T, c_T) the state to carry on, caches (one per step).
    """
    xp = get_array_module(X)
    B, T, E = X.shape
    Z_x = (X.reshape(B * T, E) @ W_x.T + b).reshape(B, T, -1)    # (B, T, 4H)
    W_h_T = xp.ascontiguousarray(W_h.T)                         # (H, 4H)
    hs = xp.empty((B, T, h0.shape[1]), dtype=X.dtype)          # (B, T, H)
    h, c, caches = h0, c0, []
    for t in range(T):
        h_prev = h
        h, c, cache = lstm_cell(Z_x[:, t] + h_prev @ W_h_T, X[:, t], h_prev, c, W_x, W_h)
        hs[:, t] = h
        caches.append(cache)
    return hs, (h, c), caches


def lstm_backward(dhs, dh_T, dc_T, caches):
    """Backpropagation through time over the window that produced ``caches``.

    Args:
        dhs: (B, T, H) dL/dh_t from the layer above.   dh_T, dc_T: (B, H) gradient from beyond the
            window (zero in truncated BPTT; the state-gradient tests use it to backpropagate u).
    Returns:
        dX (B, T, E), dh0 (B, H), dc0 (B, H), grads summed over steps {'W_x', 'W_h', 'b'}.
    """
    xp = get_array_module(dhs)
    B, T, _ = dhs.shape
    dZ = xp.empty((B, T, dhs.shape[2] * 4), dtype=dhs.dtype)           # (B, T, 4H)
    dh, dc = dh_T, dc_T
    for t in reversed(range(T)):
        dZ[:, t], dh, dc = lstm_step_backward(dhs[:, t] + dh, dc, caches[t])
    # the gradients that follow from dz (see lstm_step_backward), for all steps at once
    dZ = dZ.reshape(B * T, -1)                                          # (BT, 4H)
    X = xp.stack([cache["x"] for cache in caches], axis=1).reshape(B * T, -1)         # (BT, E)
    H_prev = xp.stack([cache["h_prev"] for cache in caches], axis=1).reshape(B * T, -1)  # (BT, H)
    dX = (dZ @ caches[0]["W_x"]).reshape(B, T, -1)                     # (B, T, E)
    grads = {"W_x": dZ.T @ X, "W_h": dZ.T @ H_prev, "b": dZ.sum(axis=0)}
    return dX, dh, dc, grads


def lm_loss_and_grads(params, inputs, targets, h0, c0, dropout_mask=None, backward=True,
                      workers: int = 1):
    """Loss of the LSTM LM on one window and the gradient of every parameter (manual BPTT).

    Equations:
        x_t = embedding[w_t];  (h_t, c_t) = LSTM(x_t, h_{t-1}, c_{t-1})
        a_t = W_out (h_t * mask_t) + b_out;  L = mean_t CE(softmax(a_t), w_{t+1})
    Dropout (on the LSTM output only) is a fixed ``dropout_mask`` already scaled by 1/(1-p), so
    the function is deterministic and its gradients can be checked. No clipping here: clipping is
    the optimiser's business (train.py).

    Args:
        params: dict of PARAM_SHAPES.   inputs, targets: (B, T) word ids.
        h0, c0: (B, H) carried state.    dropout_mask: (B, T, H) or None.
        backward: False to stop after the loss (evaluation).
        workers: NumPy only: the B streams are split among this many threads
            (``map_stream_blocks``); the loss and gradients are the sums of theirs. The products
            run about as fast as with a multi-threaded BLAS, and the element-wise work, which NumPy
            runs on one core, runs on all of them.
    Returns:
        loss (float), grads (dict like params, None without backward), (h_T, c_T).
    """
    B, T = inputs.shape
    if workers < 2 or B < 2 or get_array_module(params["W_h"]) is not np:
        return streams_loss_and_grads(params, inputs, targets, h0, c0, dropout_mask, backward, B * T)
    parts = map_stream_blocks(
        lambda rows: streams_loss_and_grads(params, inputs[rows], targets[rows], h0[rows], c0[rows],
                                            None if dropout_mask is None else dropout_mask[rows],
                                            backward, B * T), B, workers)
    loss = sum(part[0] for part in parts)
    grads = parts[0][1]
    for _, more, _ in parts[1:] if backward else ():
        for name in grads:
            grads[name] += more[name]
    state = tuple(np.concatenate([part[2][i] for part in parts]) for i in (0, 1))   # (B, H) each
    return loss, grads, state


def streams_loss_and_grads(params, inputs, targets, h0, c0, dropout_mask, backward, n_total):
    """``lm_loss_and_grads`` of some of the streams (B here): their share of the loss averaged
    over ``n_total`` tokens (B T of all the streams), and of its gradients. Arrays as there; the
    mask may be None."""
    xp = get_array_module(params["W_h"])
    B, T = inputs.shape
    X = params["embedding"][inputs]                                    # (B, T, E)
    hs, state, caches = lstm_forward(X, h0, c0, params["W_x"], params["W_h"], params["b"])
    h_drop = hs if dropout_mask is None else hs * dropout_mask         # (B, T, H)
    loss, grads, dh_flat = output_layer(h_drop.reshape(B * T, -1), targets.reshape(-1),
                                        params["W_out"], params["b_out"], n_total, backward)
    if not backward:
        return loss, None, state
    dh_drop = dh_flat.reshape(B, T, -1)                                # (B, T, H)
    dhs = dh_drop if dropout_mask is None else dh_drop * dropout_mask  # through the mask
    zeros = xp.zeros_like(h0)                                          # (B, H)
    dX, _, _, lstm_grads = lstm_backward(dhs, zeros, zeros, caches)
    grads.update(lstm_grads)
    grads["embedding"] = xp.zeros_like(params["embedding"])            # (V, E)
    scatter_add_rows(grads["embedding"], inputs.reshape(-1), dX.reshape(B * T, -1))
    return loss, grads, state


# ----------------------------------------------------------------------------------------------
# 6. word2vec CBOW with negative sampling (the embeddings of the paper's second LM)
# ----------------------------------------------------------------------------------------------

def context_mean(W_in, contexts, context_mask):
    """h_n = mean of W_in[contexts[n, j]] over the j with context_mask[n, j] = 1.

    Args: W_in (V, E); contexts (N, 2w) ids; context_mask (N, 2w) 1 for a context word, 0 for padding.
    Returns: h (N, E).
    """
    return ((W_in[contexts] * context_mask[:, :, None]).sum(axis=1)
            / context_mask.sum(axis=1, keepdims=True))                     # (N, E)


def cbow_loss_and_grads(h, W_out, centers, negatives):
    """CBOW negative-sampling loss of a batch of context means, and its gradients (Mikolov et al. 2013).

    Equations (per example n; s = sigmoid; a negative equal to the centre word is skipped, as in
    word2vec.c, by a weight m_nk = [neg_nk != center_n]):
        L = - sum_n [ log s(h_n . W_out[center_n]) + sum_k m_nk log s(-h_n . W_out[neg_nk]) ]

    Args:
        h: (N, E) context means (``context_mean``).   W_out: (V, E) output vectors.
        centers: (N,) ids.   negatives: (N, k) ids.
    Returns:
        loss (float, summed over the batch), dh (N, E) = dL/dh_n, dW_out (V, E) (dense, for clarity).
        word2vec.c adds -lr * dh_n, undivided, to the vector of every context word of example n
        (``train.cbow_step``); dL/dW_in would be dh_n / |context_n|.
    """
    xp = get_array_module(h)
    targets = xp.concatenate([centers[:, None], negatives], axis=1)        # (N, 1+k)
    labels = xp.zeros(targets.shape, dtype=h.dtype)
    labels[:, 0] = 1.0                                                     # 1 = real, 0 = noise
    weight = (targets != centers[:, None]).astype(h.dtype)                 # (N, 1+k)
    weight[:, 0] = 1.0
    score = xp.einsum("ne,nke->nk", h, W_out[targets])                     # (N, 1+k)
    sign = 2.0 * labels - 1.0
    loss = float((weight * xp.logaddexp(0.0, -sign * score)).sum())        # -log s(y) = log(1 + e^-y)
    dscore = weight * (sigmoid(score) - labels)                            # through -log s(+-score)
    dW_out = xp.zeros_like(W_out)
    scatter_add_rows(dW_out, targets.reshape(-1),
                     (dscore[:, :, None] * h[:, None, :]).reshape(-1, h.shape[1]))
    dh = xp.einsum("nk,nke->ne", dscore, W_out[targets])                   # (N, E)
    return loss, dh, dW_out


# ----------------------------------------------------------------------------------------------
# 7. State gradients in forward mode
# ----------------------------------------------------------------------------------------------

def fold_gates(cache, W):
    """Fold the four gate blocks of ``W`` into the two matrices the tangent recurrence needs.

    With dz = W v (v a tangent of the step's input: x_t for W = W_x, h_{t-1} for W = W_h),
        dc_t = M_c v + f dc_{t-1},    M_c = diag(s'(z_i) g) W_i + diag(s'(z_f) c_{t-1}) W_f
                                            + diag(i (1 - g^2)) W_g
        dh_t = diag(s'(z_o) tanh c_t) W_o v + q dc_t,   q = o (1 - tanh^2 c_t)
             = M_h v + q f dc_{t-1},  M_h = diag(s'(z_o) tanh c_t) W_o + diag(q) M_c
    (s' = sigmoid', s'(z) = s (1 - s)). Folding first halves the work of the big product:
    two (H x H) blocks per stream instead of W_h's four.

    Args:
        cache: from ``lstm_step_forward`` (B streams).   W: (4H, D) with D = E or H.
    Returns:
        M_c, M_h: (B, H, D) each, and f and q: (B, H) each (dc_{t-1} decays by f into dc_t
        and by q f into dh_t).
    """
    xp = get_array_module(W)
    i, f, g, o, tanh_c = cache["i"], cache["f"], cache["g"], cache["o"], cache["tanh_c"]
    B, H = i.shape
    q = o * (1 - tanh_c ** 2)                                                  # (B, H)
    # row h of M_c (of M_h) mixes row h of the gate blocks W_i, W_f, W_g, W_o with these weights:
    mix_c = xp.stack([i * (1 - i) * g, f * (1 - f) * cache["c_prev"], i * (1 - g ** 2),
                      xp.zeros_like(i)], axis=-1)                              # (B, H, 4)
    mix_h = q[:, :, None] * mix_c                                              # (B, H, 4)
    mix_h[:, :, 3] = o * (1 - o) * tanh_c
    gate_rows = W.reshape(4, H, -1).transpose(1, 0, 2)                         # (H, 4, D) a view
    # one small product per unit h: (2B, 4) @ (4, D) -> (H, 2B, D)
    M = xp.matmul(xp.concatenate([mix_c, mix_h]).transpose(1, 0, 2), gate_rows)
    M_c, M_h = M[:, :B].transpose(1, 0, 2), M[:, B:].transpose(1, 0, 2)       # (B, H, D) views
    return M_c, M_h, f, q


def state_gradient_step(J_prev, cache, W_x, W_h, out=None):
    """Advance the tangents of all delays by one time step (the forward-mode recurrence).

    Equations, for every delay k = 0..K at once (M_c, M_h, f, q from ``fold_gates``, of W_x for
    k = 0 and of W_h for k >= 1):
        Jc_{t,0} = M_c,                               Jh_{t,0} = M_h
        Jc_{t,k} = M_c Jh_{t-1,k-1} + f Jc_{t-1,k-1},  Jh_{t,k} = M_h Jh_{t-1,k-1} + q f Jc_{t-1,k-1}
    which is the chain rule through z_t: dz = W_x (k = 0) or W_h Jh_{t-1,k-1} (k >= 1), and
    Jc_{t,k} = f Jc_{t-1,k-1} + (s'(z_i) g) dz_i + (s'(z_f) c_{t-1}) dz_f + (i (1-g^2)) dz_g.

    Layout: the tangents are stored transposed, one (E, H) block per delay, so that the blocks of
    all delays of one stream form a single (K E, H) matrix and the step is one large product per
    stream (instead of K small ones): J[b, 0, k] = (dc_t / dx_{t-k})^T, J[b, 1, k] = (dh_t /
    dx_{t-k})^T, and the Jacobian G_{t,k} of the paper is J[b, 0, k].T.

    Args:
        J_prev: (B, 2, K+1, E, H) the tangents at t-1 (C-contiguous). Consumed: its Jc block
            is scaled in place (the decayed Jc, without a buffer of its own).
        cache: from ``lstm_step_forward`` at step t.   W_x: (4H, E).   W_h: (4H, H).
        out: optional C-contiguous (B, 2, K+1, E, H) buffer to write into (not J_prev).
    Returns:
        J: (B, 2, K+1, E, H) at t. The tangents of delay K at t-1 have no successor within K
        and are dropped.
    """
    xp = get_array_module(J_prev)
    B, _, n_delays, E, H = J_prev.shape
    J = xp.empty(J_prev.shape, J_prev.dtype) if out is None else out   # (B, 2, K+1, E, H)
    if not J.flags.c_contiguous:
        raise ValueError("out must be C-contiguous (the product writes into views of it)")
    Mx_c, Mx_h, _, _ = fold_gates(cache, W_x)               # (B, H, E) each
    Mh_c, Mh_h, f, q = fold_gates(cache, W_h)               # (B, H, H) each, (B, H) each
    J[:, 0, 0] = Mx_c.transpose(0, 2, 1)                    # k = 0: dz = W_x
    J[:, 1, 0] = Mx_h.transpose(0, 2, 1)
    rows = (n_delays - 1) * E                               # delays 0..K-1 at t-1 -> 1..K at t
    source = J_prev.reshape(B, 2, n_delays * E, H)[:, :, :rows]        # (B, 2, K E, H) views
    target = J.reshape(B, 2, n_delays * E, H)[:, :, E:]                # (B, 2, K E, H)
    decayed = source[:, 0]                                  # Jc_{t-1}, scaled in place below
    for state, (M, decay) in enumerate(((Mh_c, f), (Mh_h, q))):
        # the one large product: (B, K E, H) @ (B, H, H) -> (B, K E, H), i.e. M Jh for all k
        xp.matmul(source[:, 1], M.transpose(0, 2, 1), out=target[:, state])
        decayed *= decay[:, None, :]                        # f Jc, then q f Jc
        target[:, state] += decayed
    return J


class StateGradientSums:
    """Streaming sums and counts of G_{t,k} over all positions and per class of the word at t-k.

    Memory is flat in the length of the text: one float64 array (K+1, C, 2H, E) for C classes over
    all labelings ([c; h] stacked on the state axis), plus two float32 buffers of the same size in
    the layout of ``state_gradient_step`` (K+1, 2, C, E, H): one step's class sums, and the window
    that collects them before they are added to the float64 sums.

    Labelings are int arrays over the stream positions, -1 meaning "in no class"; one labeling
    "all" (every position in class 0) is always there, so that ``mean('all')`` is eq. (1)'s Gbar.
    """

    def __init__(self, label_names: dict, K: int, H: int, E: int, xp=np):
        # label_names: {labeling: [class names]}; the offsets place each labeling in the C axis.
        self.labelings = {"all": ["all"], **label_names}
        self.offsets, C = {}, 0
        for name, classes in self.labelings.items():
            self.offsets[name] = C
            C += len(classes)
        self.xp, self.H = xp, H
        self.sums = xp.zeros((K + 1, C, 2 * H, E), dtype=np.float64)
        self.window = xp.zeros((K + 1, 2, C, E * H), dtype=np.float32)   # the window's class sums
        self.step = xp.empty((K + 1, 2, C, E * H), dtype=np.float32)    # one step's class sums
        self.counts = np.zeros((K + 1, C), dtype=np.int64)

    def add(self, J, labels_at_source):
        """Add G_{t,k} (J[:, :, k] of J: (B, 2, K+1, E, H)) to the sums of each class of x_{t-k}.

        Equal to the naive loop (tests/test_state_gradients.py::
        test_streaming_sums_equal_brute_force_average proves it):

            for name, labels in labels_at_source.items():
                for b in range(B):
                    for k in range(K + 1):
                        if labels[b, k] >= 0:
                            C = offsets[name] + labels[b, k]
                            sums[k, C] += [J[b, 0, k].T; J[b, 1, k].T];  counts[k, C] += 1

        done as one batched product: a one-hot (K+1, 1, C, B) matrix of "position b is in class C
        at delay k" times J seen as (K+1, 2, B, EH).

        Args:
            labels_at_source: {labeling: (B, K+1) class id of x_{t-k}, -1 = none/before the text}.
        """
        B, _, n_delays = J.shape[:3]
        weights = np.zeros((n_delays, self.counts.shape[1], B), np.float32)   # (K+1, C, B) one-hot
        k_index, b_index = np.meshgrid(np.arange(n_delays), np.arange(B), indexing="ij")
        for name, offset in self.offsets.items():
            ids = labels_at_source[name].T                                # (K+1, B)
            keep = ids >= 0
            weights[k_index[keep], offset + ids[keep], b_index[keep]] = 1.0
        self.counts += weights.sum(axis=2).astype(np.int64)
        by_delay = J.transpose(2, 1, 0, 3, 4).reshape(n_delays, 2, B, -1)  # (K+1, 2, B, EH), a view
        self.xp.matmul(self.xp.asarray(weights)[:, None], by_delay, out=self.step)  # (K+1, 2, C, EH)
        self.window += self.step

    def flush(self):
        """Move the float32 window buffer into the float64 sums (call once per window)."""
        n_delays, C, _, E = self.sums.shape
        sums = self.sums.reshape(n_delays, C, 2, self.H, E)                  # a view: [c; h] blocks
        sums += self.window.reshape(n_delays, 2, C, E, self.H).transpose(0, 2, 1, 4, 3)
        self.window[...] = 0.0

    def merge(self, other: "StateGradientSums"):
        """Add the sums and counts of another sweep over other streams of the same text."""
        self.flush()
        other.flush()
        self.sums += other.sums
        self.counts += other.counts

    def mean(self, labeling: str = "all", state: str = "c"):
        """Gbar_k per class (eq. 1): (n_classes, K+1, H, E) as NumPy; NaN where a count is 0."""
        if state not in ("c", "h"):
            raise ValueError(f"state must be 'c' or 'h', not {state!r}")
        self.flush()
        start = self.offsets[labeling]
        stop = start + len(self.labelings[labeling])
        rows = slice(0, self.H) if state == "c" else slice(self.H, 2 * self.H)
        sums = to_numpy(self.sums[:, start:stop, rows]).transpose(1, 0, 2, 3)
        counts = self.count(labeling)[:, :, None, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def count(self, labeling: str = "all"):
        """Number of positions behind each mean: (n_classes, K+1)."""
        start = self.offsets[labeling]
        return self.counts[:, start:start + len(self.labelings[labeling])].T.copy()


def sweep_state_gradients(params, streams, labelings: dict, label_names: dict, K: int,
                          window: int = 50, progress=None, workers: int = 1):
    """Read the text with the LSTM and sum the state gradients of every delay 0..K.

    The text is B parallel streams (like training); the state (h, c) and the tangents J = (Jc, Jh)
    are carried from window to window, so that G_{t,k} is exact for every t >= k in a stream.
    Slots whose source position lies before the stream's start are counted in no class.

    Args:
        params: the LM's arrays (on the backend that should do the work).
        streams: (B, N) word ids.   labelings: {name: (B, N) int class ids, -1 = none}.
        label_names: {name: [class names]}.   K: largest delay.   window: steps between flushes.
        progress: optional callable(n) told after every step that n more positions are done.
        workers: threads, each sweeping its own block of the streams (NumPy only; see
            ``map_stream_blocks``).
    Returns:
        StateGradientSums with the sums and counts.
    """
    B, N = streams.shape
    if N <= K:
        raise ValueError(f"delay {K} is larger than the text (each of the {B} streams has {N} "
                         "words); use a smaller --max-delay or more text")
    xp = get_array_module(params["W_h"])
    workers = max(1, min(workers, B)) if xp is np else 1
    if workers == 1:
        return _sweep_streams(params, streams, labelings, label_names, K, window, progress)
    results = map_stream_blocks(
        lambda rows: _sweep_streams(params, streams[rows],
                                    {n: lab[rows] for n, lab in labelings.items()},
                                    label_names, K, window, progress), B, workers)
    for other in results[1:]:
        results[0].merge(other)
    return results[0]


def _sweep_streams(params, streams, labelings, label_names, K, window, progress):
    """``sweep_state_gradients`` on one thread: the loop over time steps."""
    xp = get_array_module(params["W_h"])
    W_x, W_h, b, emb = params["W_x"], params["W_h"], params["b"], params["embedding"]
    B, N = streams.shape
    H, E = W_h.shape[1], W_x.shape[1]
    sums = StateGradientSums(label_names, K, H, E, xp=xp)
    all_labels = {"all": np.zeros_like(streams), **labelings}
    # labels padded with K "-1" columns on the left: column t + K - k holds the word at t - k
    padded = {n: np.concatenate([np.full((B, K), -1), lab], axis=1) for n, lab in all_labels.items()}
    tokens = xp.asarray(streams)
    h = xp.zeros((B, H), dtype=W_h.dtype)                    # (B, H)
    c = xp.zeros((B, H), dtype=W_h.dtype)                    # (B, H)
    J = xp.zeros((B, 2, K + 1, E, H), dtype=W_h.dtype)       # (B, 2, K+1, E, H) tangents Jc, Jh
    J_next = xp.empty_like(J)                                # second buffer, swapped every step
    delays = np.arange(K + 1)
    for t in range(N):
        h, c, cache = lstm_step_forward(emb[tokens[:, t]], h, c, W_x, W_h, b)
        J, J_next = state_gradient_step(J, cache, W_x, W_h, out=J_next), J
        source = t + K - delays                              # (K+1,) column of x_{t-k}
        sums.add(J, {n: p[:, source] for n, p in padded.items()})
        if (t + 1) % window == 0:
            sums.flush()
        if progress is not None:
            progress(B)
    sums.flush()
    return sums


# ----------------------------------------------------------------------------------------------
# 8. Measures: SVD (eq. 1), property vectors (eq. 2), cos(d, H_n) (eq. 3-4), m (eq. 5-6)
# ----------------------------------------------------------------------------------------------

def singular_values(G_bar):
    """Eq. (1): Gbar = U S V^T. Args: (..., H, E). Returns S (..., min(H, E)), descending."""
    return np.linalg.svd(G_bar, compute_uv=False)


def right_singular_vectors(G_bar):
    """Eq. (1): V (E, r) with columns v_1, v_2, ... (embedding-space directions), and S (r,)."""
    _, S, Vt = np.linalg.svd(G_bar, full_matrices=False)
    return Vt.T, S


def property_vector(embeddings, words_a, words_b):
    """Eq. (2): d_{a-b} = mean embedding of class a - mean embedding of class b, then d <- d / |d|.

    Args:
        embeddings: (V, E).   words_a, words_b: ids of the words of each class (word types).
    Returns:
        d (E,) of unit length, and |mean_a - mean_b| (float), the length it had before eq. (2)
        scaled it (r * length = |Gbar (mean_a - mean_b)|, the state's response to the property).
    """
    if len(words_a) == 0 or len(words_b) == 0:
        raise ValueError("a property needs words in both classes")
    difference = (embeddings[np.asarray(words_a)].mean(axis=0)
                  - embeddings[np.asarray(words_b)].mean(axis=0))                # (E,)
    length = float(np.linalg.norm(difference))
    if length == 0.0:
        raise ValueError("the two classes of a property have the same mean embedding")
    return difference / length, length


def subspace_cosine(G_bar, d, n: int):
    """Eq. (3-4): cos(d, H_n) = |V_n^T d| for unit d, H_n spanned by the top-n right singular vectors.

    (y = V_n V_n^T d is the projection of d on H_n; cos(d, y) = d^T y / (|d| |y|) = |V_n^T d|.)
    """
    V, _ = right_singular_vectors(G_bar)
    if not 1 <= n <= V.shape[1]:
        raise ValueError(f"n = {n} must be between 1 and the rank bound min(H, E) = {V.shape[1]}")
    return float(np.linalg.norm(V[:, :n].T @ d))


def relative_memory(G_bar, d):
    """Eq. (5-6): r = |Gbar d| and m = r / sigma_1 (m = 1 when d is v_1). Returns (r, m)."""
    r = float(np.linalg.norm(G_bar @ d))
    return r, r / float(singular_values(G_bar)[0])


def whitening(embeddings):
    """Cholesky factor D of the embedding covariance (Sigma = D D^T), for the journal version's
    whitened comparison: embeddings e -> D^-1 e, gradients G -> G D, so that G e is unchanged and
    the whitened embeddings have identity covariance. Returns D (E, E)."""
    centred = embeddings - embeddings.mean(axis=0)
    cov = centred.T @ centred / (len(embeddings) - 1)
    return np.linalg.cholesky(cov)


def whiten_gradient(G_bar, D):
    """A gradient (..., H, E) in the whitened embedding space: G -> G D (so G e = (G D)(D^-1 e))."""
    return G_bar @ D


def whiten_vector(d, D):
    """A vector (E,) of the embedding space in the whitened space: d -> D^-1 d (not rescaled)."""
    return np.linalg.solve(D, d)


# ----------------------------------------------------------------------------------------------
# 9. A one-second demo: python lstm_memory.py
# ----------------------------------------------------------------------------------------------

def demo(seed: int = 0, T: int = 8, k: int = 3):
    """A tiny random LSTM reads T random words; prints G_{T-1,k} = dc_{T-1}/dx_{T-1-k} by the
    forward-mode recurrence next to central finite differences, then sigma_1 and the sum of the
    singular values of Gbar_tau (eq. 1) over a longer random text."""
    rng = np.random.default_rng(seed)
    V, E, H = 7, 3, 4
    params = init_params(V, E, H, seed=seed, scale=0.8, dtype=np.float64)
    params["b"] = rng.normal(0.0, 0.5, 4 * H)                       # non-zero biases
    X = params["embedding"][rng.integers(0, V, T)][None]             # (1, T, E) one stream

    def final_c(X):
        c = h = np.zeros((1, H))
        for t in range(T):
            h, c, _ = lstm_step_forward(X[:, t], h, c, params["W_x"], params["W_h"], params["b"])
        return c[0]                                                  # (H,)

    J = np.zeros((1, 2, k + 1, E, H))                                # tangents Jc, Jh (transposed)
    h = c = np.zeros((1, H))
    for t in range(T):
        h, c, cache = lstm_step_forward(X[:, t], h, c, params["W_x"], params["W_h"], params["b"])
        J = state_gradient_step(J, cache, params["W_x"], params["W_h"])
    forward_mode = J[0, 0, k].T                                      # (H, E)
    finite_differences = np.zeros((H, E))
    eps = 1e-6
    for e in range(E):
        step = np.zeros_like(X)
        step[0, T - 1 - k, e] = eps
        finite_differences[:, e] = (final_c(X + step) - final_c(X - step)) / (2 * eps)
    np.set_printoptions(precision=6, suppress=True)
    print(f"G_{{t,{k}}} = dc_t/dx_{{t-{k}}} at t = {T - 1}, forward mode "
          f"(H = {H} rows, E = {E} columns):")
    print(forward_mode)
    print("central finite differences:")
    print(finite_differences)
    print(f"largest difference: {np.abs(forward_mode - finite_differences).max():.1e}\n")
    streams = rng.integers(0, V, (4, 200))                           # (B, N) random text
    G_bar = sweep_state_gradients(params, streams, {}, {}, K=6).mean("all", "c")[0]   # (K+1, H, E)
    S = singular_values(G_bar)                                       # (K+1, min(H, E))
    print("Gbar_tau over 4 x 200 random words (eq. 1): tau, sigma_1, sum of sigma")
    for tau, s in enumerate(S):
        print(f"  {tau}  {s[0]:.4f}  {s.sum():.4f}")


if __name__ == "__main__":
    demo()
