"""State gradients for RNN memory analysis (Verwimp et al., Interspeech 2018), from scratch.

Read top to bottom, like the paper:

  1. backend          NumPy or CuPy behind one name, ``xp``
  2. parameters       the LSTM language model's arrays and their shapes
  3. softmax loss     cross-entropy with the max shift, the output layer on top of the LSTM
  4. LSTM step        forward and backward of one time step (gate order i, f, g, o)
  5. BPTT             a whole window forward and backward: the LM loss and its gradients
  6. state gradients  why forward mode; the tangent step written from the equations, then the
                      same step folded and transposed (fast); the streaming averages of eq. 1
  7. measures         SVD of the average gradient (eq. 1), property vectors (eq. 2),
                      cos(d, H_n) (eq. 3-4), relative memory m (eq. 5-6), whitening
  8. demo             ``python lstm_memory.py``: the plain and the fast tangent step next to
                      finite differences, then eq. 1 over a random text

The method and nothing else: the tool around it (checkpoints, the sweep cache, CPU threads,
plots) is the package ``tool/``, which imports this module and is never imported by it. Other
cells (a GRU, a vanilla RNN) are in cells.py, read after this file: the BPTT and the sweep here
take any of them through the interface ``LSTM`` shows (section 6).

Letters: B streams, T steps per window, E embedding size, H state size, V vocabulary, K largest delay.
Names: ``dX`` is always dLoss/dX (reverse mode). Forward-mode tangents are ``J``: ``Jc``, ``Jh``,
``Jz`` are dc_t, dh_t, dz_t with respect to an earlier input embedding x_{t-k}.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

try:  # CuPy is optional: everything below also runs on NumPy.
    import cupy
except ImportError:  # pragma: no cover - depends on the machine
    cupy = None


# --- 1. Backend -------------------------------------------------------------------------------

def gpu_available() -> bool:
    """True when CuPy is installed and sees at least one CUDA device."""
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CuPy present but no driver/device
        return False


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


def scatter_add_rows(target, rows, values) -> None:
    """target[rows[n]] += values[n] for every n, repeated rows summed (embedding gradients)."""
    get_array_module(target).add.at(target, rows, values)     # cupy.add.at on a GPU


# --- 2. Parameters ----------------------------------------------------------------------------

PARAM_SHAPES = {  # name -> shape in letters; gate order i, f, g, o along the 4H axis (G H: G gates)
    "embedding": ("V", "E"),
    "W_x": ("4H", "E"),
    "W_h": ("4H", "H"),
    "b": ("4H",),
    "W_out": ("V", "H"),
    "b_out": ("V",),
}


def init_params(V: int, E: int, H: int, seed: int = 0, scale: float = 0.05,
                dtype=np.float32, xp=np, gates: int = 4) -> dict:
    """Uniform(-scale, scale) weights, zero biases (forget-gate bias 0, as in the paper's set-up);
    ``gates`` blocks of H rows in W_x, W_h, b (4 for the LSTM; cells.py's GRU 3, RNN 1)."""
    rng = np.random.default_rng(seed)
    sizes = {"V": V, "E": E, "H": H, "4H": gates * H}
    params = {}
    for name, letters in PARAM_SHAPES.items():
        shape = tuple(sizes[s] for s in letters)
        value = np.zeros(shape) if name in ("b", "b_out") else rng.uniform(-scale, scale, shape)
        params[name] = xp.asarray(value, dtype=dtype)
    return params


def sigmoid(x):
    xp = get_array_module(x)
    return 0.5 * (xp.tanh(0.5 * x) + 1.0)  # = 1 / (1 + exp(-x)), without overflow


# --- 3. Softmax cross-entropy -----------------------------------------------------------------

def softmax_cross_entropy(logits, targets, n_total: int | None = None, out=None):
    """Mean cross-entropy of ``targets`` under softmax(``logits``), and its gradient.

    Equations:
        p = exp(a - max a) / sum exp(a - max a)          (the max shift keeps exp finite)
        L = mean_n [ log sum_j exp(a_nj) - a_n,target ]
        dL/da = (p - onehot(target)) / N

    Args:
        logits: (n, V).   targets: (n,) integer ids.
        n_total: N, when these n rows are a block of the N the mean is over (default: n); the
            loss returned is then the block's share of the mean.
        out: (n, V) buffer for dL/dlogits; ``out=logits`` reuses the logits' memory (the output
            layer does, 40 MB less per window). Default: a new array.
    Returns:
        loss (Python float), dlogits (n, V) (``out``).
    """
    xp = get_array_module(logits)
    N = logits.shape[0] if n_total is None else n_total
    rows = xp.arange(logits.shape[0])                                               # (n,)
    dlogits = logits.copy() if out is None else out
    if dlogits is not logits:
        dlogits[...] = logits
    dlogits -= dlogits.max(axis=1, keepdims=True)     # (n, V) max shift
    target_logit = dlogits[rows, targets].copy()       # (n,)
    xp.exp(dlogits, out=dlogits)                       # (n, V) unnormalised p
    total = dlogits.sum(axis=1, keepdims=True)         # (n, 1)
    loss = float((xp.log(total[:, 0]) - target_logit).sum()) / N
    dlogits *= 1.0 / (total * N)                       # p / N
    dlogits[rows, targets] -= 1.0 / N                  # (p - onehot) / N
    return loss, dlogits


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
    logits += b_out
    loss, dlogits = softmax_cross_entropy(logits, targets, n_total, out=logits)
    if not backward:
        return loss, None, None
    grads = {"W_out": dlogits.T @ h, "b_out": dlogits.sum(axis=0)}     # through a = W_out h + b
    return loss, grads, dlogits @ W_out                                # (n, H)


# --- 4. LSTM step -----------------------------------------------------------------------------

def lstm_step_forward(x, h_prev, c_prev, W_x, W_h, b, z=None):
    """One LSTM step on a batch.

    Equations (gate order i, f, g, o along the 4H axis):
        z_t = W_x x_t + W_h h_{t-1} + b
        i = sigmoid(z_i), f = sigmoid(z_f), g = tanh(z_g), o = sigmoid(z_o)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    Args:
        x: (B, E) input embeddings x_t.   h_prev, c_prev: (B, H) state at t-1.
        W_x: (4H, E).   W_h: (4H, H).   b: (4H,).
        z: (B, 4H) z_t when the caller has it already (``lstm_forward``), else computed here.
    Returns:
        h (B, H), c (B, H), cache (everything the backward pass and the tangents need).
    """
    if z is None:
        z = x @ W_x.T + h_prev @ W_h.T + b                      # (B, 4H)
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


# --- 5. Backpropagation through time over one window, and the language-model loss -------------

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
        h, c, cache = lstm_step_forward(X[:, t], h_prev, c, W_x, W_h, b,
                                        z=Z_x[:, t] + h_prev @ W_h_T)
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
                      n_tokens: int | None = None, cell=None):
    """Loss of the LSTM LM on one window and the gradient of every parameter (manual BPTT).

    Equations:
        x_t = embedding[w_t];  (h_t, c_t) = LSTM(x_t, h_{t-1}, c_{t-1})
        a_t = W_out (h_t * mask_t) + b_out;  L = mean_t CE(softmax(a_t), w_{t+1})
    Dropout (on the LSTM output only) is a fixed ``dropout_mask`` already scaled by 1/(1-p), so
    the gradients can be checked. No clipping here: that is the optimiser's (train.py).

    Args:
        params: dict of PARAM_SHAPES.   inputs, targets: (B, T) word ids.
        h0, c0: (B, H) carried state.    dropout_mask: (B, T, H) or None.
        backward: False to stop after the loss (evaluation).
        n_tokens: the tokens the mean is over (default B T); larger when these streams are a
            block of a window (tool/parallel.py), the loss and gradients then the block's share.
        cell: ``LSTM`` (default) or cells.py's GRU or RNN (which carry c through unchanged).
    Returns:
        loss (float), grads (dict like params, None without backward), (h_T, c_T).
    """
    xp = get_array_module(params["W_h"])
    B, T = inputs.shape
    X = params["embedding"][inputs]                                    # (B, T, E)
    cell = cell or LSTM
    hs, state, caches = cell.forward(X, h0, c0, params["W_x"], params["W_h"], params["b"])
    h_drop = hs if dropout_mask is None else hs * dropout_mask         # (B, T, H)
    loss, grads, dh_flat = output_layer(h_drop.reshape(B * T, -1), targets.reshape(-1),
                                        params["W_out"], params["b_out"], n_tokens or B * T,
                                        backward)
    if not backward:
        return loss, None, state
    dh_drop = dh_flat.reshape(B, T, -1)                                # (B, T, H)
    dhs = dh_drop if dropout_mask is None else dh_drop * dropout_mask  # through the mask
    zeros = xp.zeros_like(h0)                                          # (B, H)
    dX, _, _, cell_grads = cell.backward(dhs, zeros, zeros, caches)
    grads.update(cell_grads)
    grads["embedding"] = xp.zeros_like(params["embedding"])            # (V, E)
    scatter_add_rows(grads["embedding"], inputs.reshape(-1), dX.reshape(B * T, -1))  # through x_t = embedding[w_t]
    return loss, grads, state


# --- 6. State gradients in forward mode -------------------------------------------------------
# Why forward mode: G_{t,k} = dc_t/dx_{t-k} is H x E. Reverse mode gets it one row (state unit) at
# a time, so H backward passes per position and delay (the authors' code: 256 tf.gradients calls
# per step, one run per delay); forward mode carries its E columns for every delay k = 0..K along
# with the text, so one sweep over the text gives every G_{t,k}, at the cost of (K+1) products
# (H x H) @ (H x E) per step.

def tangent_step(Jc_prev, Jh_prev, cache, W_x, W_h):
    """One step of the tangent recurrence, straight from the equations (the plain form).

    Equations (the chain rule through z_t = W_x x_t + W_h h_{t-1} + b, with s' = s (1 - s) the
    sigmoid's derivative; Jz_{t,k} = dz_t/dx_{t-k}, Jc_{t,k} = dc_t/dx_{t-k}, Jh_{t,k} = dh_t/dx_{t-k}):
        Jz_{t,0} = W_x                                   (x_t enters z_t directly)
        Jz_{t,k} = W_h Jh_{t-1,k-1}                      (k >= 1: through h_{t-1})
        Jc_{t,k} = f Jc_{t-1,k-1} + s'(z_f) c_{t-1} Jz_f + s'(z_i) g Jz_i + i (1 - g^2) Jz_g
        Jh_{t,k} = s'(z_o) tanh(c_t) Jz_o + o (1 - tanh^2 c_t) Jc_{t,k}
    (Jc_{t-1,-1} = 0; a (B, H) factor scales the rows of each (H, E) block.)

    Args:
        Jc_prev, Jh_prev: (B, K+1, H, E) tangents at t-1: Jc_prev[b, k] = dc_{t-1}/dx_{t-1-k},
            in the paper's orientation (rows: state, columns: embedding).
        cache: from ``lstm_step_forward`` at step t.   W_x: (4H, E).   W_h: (4H, H).
    Returns:
        Jc, Jh: (B, K+1, H, E) at t; Jc[b, k] is the paper's G_{t,k}. The delay-K tangents of
        t-1 have no successor within K and are dropped.
    """
    xp = get_array_module(Jc_prev)
    i, f, g, o, tanh_c, c_prev = (cache[name][:, :, None]                 # (B, H, 1) each
                                  for name in ("i", "f", "g", "o", "tanh_c", "c_prev"))
    B, n_delays, H, E = Jc_prev.shape
    Jc, Jh = xp.empty_like(Jc_prev), xp.empty_like(Jh_prev)               # (B, K+1, H, E)
    for k in range(n_delays):
        if k == 0:
            Jz = xp.broadcast_to(W_x, (B, 4 * H, E))                      # (B, 4H, E)
            Jc_decayed = 0.0
        else:
            Jz = W_h @ Jh_prev[:, k - 1]                                  # (B, 4H, E)
            Jc_decayed = f * Jc_prev[:, k - 1]                            # (B, H, E)
        Jz_i, Jz_f, Jz_g, Jz_o = Jz[:, :H], Jz[:, H:2 * H], Jz[:, 2 * H:3 * H], Jz[:, 3 * H:]
        Jc[:, k] = (Jc_decayed + i * (1 - i) * g * Jz_i + f * (1 - f) * c_prev * Jz_f
                    + i * (1 - g ** 2) * Jz_g)
        Jh[:, k] = o * (1 - o) * tanh_c * Jz_o + o * (1 - tanh_c ** 2) * Jc[:, k]
    return Jc, Jh


# The same step, faster. ``tangent_step_fast_in_place`` computes exactly what ``tangent_step``
# does (tests/method/test_state_gradients.py proves it), with three changes that each buy speed:
#   * folding: the gate factors of a step do not depend on k, so they are folded into two
#     (H x H) matrices (one for c, one for h) before the product with the tangents: half the
#     FLOPs of multiplying every tangent by W_h (4H x H) and then scaling its four blocks;
#   * transposing: the tangents are stored as (E, H) blocks, J[b, 0, k] = Jc_{t,k}^T and
#     J[b, 1, k] = Jh_{t,k}^T, so that the blocks of all delays of one stream form one contiguous
#     (K E, H) matrix and the step is one large product per stream instead of K small ones;
#   * buffers: the step writes into a given ``out`` and scales the decayed Jc inside J_prev, so
#     no array of the tangents' size is allocated per step.

def fold_gates(cache, W):
    """Fold the four gate blocks of ``W`` into the two matrices the fast tangent step needs.

    With Jz = W v (v a tangent of the step's input: of x_t for W = W_x, of h_{t-1} for W = W_h),
    ``tangent_step``'s equations regroup into
        Jc_{t,k} = M_c v + f Jc_{t-1,k-1},   M_c = diag(s'(z_i) g) W_i + diag(s'(z_f) c_{t-1}) W_f
                                                   + diag(i (1 - g^2)) W_g
        Jh_{t,k} = M_h v + q f Jc_{t-1,k-1}, M_h = diag(s'(z_o) tanh c_t) W_o + diag(q) M_c,
                                             q = o (1 - tanh^2 c_t)
    Args: cache, from ``lstm_step_forward`` (B streams); W (4H, D) with D = E or H.
    Returns: M_c, M_h (B, H, D) each, and f and q (B, H) each.
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


def tangent_step_fast_in_place(J_prev, cache, W_x, W_h, out):
    """``tangent_step`` folded and transposed: the tangents of all delays advanced by one step.

    Equations (M_c, M_h, f, q from ``fold_gates`` of W_x for k = 0, of W_h for k >= 1):
        Jc_{t,0} = Mc_x,    Jc_{t,k} = Mc_hprev Jh_{t-1,k-1} + f Jc_{t-1,k-1}
        Jh_{t,0} = Mh_x,    Jh_{t,k} = Mh_hprev Jh_{t-1,k-1} + q f Jc_{t-1,k-1}
    Mc_x = dc_t/dx_t and Mc_hprev = dc_t/dh_{t-1} (with c_{t-1} held), and likewise Mh_*.

    Args:
        J_prev: (B, 2, K+1, E, H) the tangents at t-1, J_prev[b, 0, k] = Jc_{t-1,k}^T and
            J_prev[b, 1, k] = Jh_{t-1,k}^T. Overwritten: its Jc blocks are scaled in place.
        cache: from ``lstm_step_forward`` at step t.   W_x: (4H, E).   W_h: (4H, H).
        out: C-contiguous (B, 2, K+1, E, H) buffer (not J_prev) that receives the tangents at t.
    Returns: ``out`` (``tangents_in_paper_orientation`` turns it into Jc, Jh).
    """
    xp = get_array_module(J_prev)
    B, _, n_delays, E, H = J_prev.shape
    if not out.flags.c_contiguous or out is J_prev:
        raise ValueError("out must be a C-contiguous buffer other than J_prev")
    Mc_x, Mh_x, _, _ = fold_gates(cache, W_x)                  # (B, H, E) each
    Mc_hprev, Mh_hprev, f, q = fold_gates(cache, W_h)          # (B, H, H) each, (B, H) each
    out[:, 0, 0] = Mc_x.transpose(0, 2, 1)                     # k = 0: Jz = W_x
    out[:, 1, 0] = Mh_x.transpose(0, 2, 1)
    rows = (n_delays - 1) * E                                  # delays 0..K-1 at t-1 -> 1..K at t
    source = J_prev.reshape(B, 2, n_delays * E, H)[:, :, :rows]        # (B, 2, K E, H) views
    target = out.reshape(B, 2, n_delays * E, H)[:, :, E:]              # (B, 2, K E, H)
    decayed = source[:, 0]                                     # Jc_{t-1}, scaled in place below
    for state, (M, decay) in enumerate(((Mc_hprev, f), (Mh_hprev, q))):
        # the one large product: (B, K E, H) @ (B, H, H) -> (B, K E, H), i.e. M Jh for all k
        xp.matmul(source[:, 1], M.transpose(0, 2, 1), out=target[:, state])
        decayed *= decay[:, None, :]                           # f Jc, then q f Jc
        target[:, state] += decayed
    return out


def tangents_in_paper_orientation(J):
    """The fast step's J (B, 2, K+1, E, H) as Jc, Jh (B, K+1, H, E): Jc[b, k] = G_{t,k}."""
    return J[:, 0].transpose(0, 1, 3, 2), J[:, 1].transpose(0, 1, 3, 2)


# The LSTM as a cell: the interface through which ``lm_loss_and_grads`` and the sweep also run
# cells.py's GRU and RNN. ``states``: the states whose tangents J carries, in J's order.
LSTM = SimpleNamespace(name="lstm", states=("c", "h"), gates=4, step_forward=lstm_step_forward,
                       forward=lstm_forward, backward=lstm_backward, tangent_step=tangent_step,
                       tangent_step_fast_in_place=tangent_step_fast_in_place)


class StateGradientSums:
    """Streaming sums and counts of G_{t,k} over all positions and per class of the word at t-k.

    Memory is flat in the length of the text: one float64 array (K+1, C, S H, E) for C classes over
    all labelings (the S ``states``, [c; h] for the LSTM, stacked on the state axis), plus two
    float32 buffers of the same size in the fast step's layout (K+1, S, C, E·H): one step's class
    sums, and the window that collects
    them before ``flush`` adds them to the float64 sums (float32 sums would lose the small terms of
    a long text).

    Labelings are int arrays over the stream positions, -1 meaning "in no class"; one labeling
    "all" (every position in class 0) is always there: ``G_bar`` is eq. (1)'s Gbar_tau.
    """

    def __init__(self, label_names: dict, K: int, H: int, E: int, xp=np, states=("c", "h")):
        # label_names: {labeling: [class names]}; the offsets place each labeling in the C axis.
        self.labelings = {"all": ["all"], **label_names}
        self.offsets, C = {}, 0
        for name, classes in self.labelings.items():
            self.offsets[name] = C
            C += len(classes)
        self.xp, self.H, self.states, S = xp, H, tuple(states), len(states)
        self.sums = xp.zeros((K + 1, C, S * H, E), dtype=np.float64)             # (K+1, C, SH, E)
        self.window = xp.zeros((K + 1, S, C, E * H), dtype=np.float32)   # the window's class sums
        self.step = xp.empty((K + 1, S, C, E * H), dtype=np.float32)    # one step's class sums
        self.counts = np.zeros((K + 1, C), dtype=np.int64)                          # (K+1, C)

    def add(self, J, labels_at_source):
        """Add G_{t,k} (the fast layout J (B, S, K+1, E, H)) to the sums of each class of x_{t-k}.

        Equal to the naive loop (tests/method/test_state_gradients.py::
        test_streaming_sums_equal_brute_force_average proves it):

            Jc, Jh = tangents_in_paper_orientation(J)
            for name, labels in labels_at_source.items():
                for b in range(B):
                    for k in range(K + 1):
                        if labels[b, k] >= 0:
                            C = offsets[name] + labels[b, k]
                            sums[k, C] += [Jc[b, k]; Jh[b, k]];  counts[k, C] += 1

        done as one batched product: a one-hot (K+1, 1, C, B) matrix of "position b is in class C
        at delay k" times J seen as (K+1, S, B, EH).

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
        S = len(self.states)
        by_delay = J.transpose(2, 1, 0, 3, 4).reshape(n_delays, S, B, -1)  # (K+1, S, B, EH), a view
        self.xp.matmul(self.xp.asarray(weights)[:, None], by_delay, out=self.step)  # K+1, S, C, EH
        self.window += self.step

    def flush(self):
        """Move the float32 window buffer into the float64 sums (call once per window)."""
        n_delays, C, _, E = self.sums.shape
        S = len(self.states)
        sums = self.sums.reshape(n_delays, C, S, self.H, E)              # a view: [c; h] blocks
        sums += self.window.reshape(n_delays, S, C, E, self.H).transpose(0, 2, 1, 4, 3)
        self.window[...] = 0.0

    def G_bar_per_class(self, labeling: str, state: str | None = None):
        """Gbar_k of each class of ``labeling`` (eq. 1 over its positions) for ``state`` (default:
        the first, c for the LSTM): (C, K+1, H, E) as NumPy float64; NaN where none was counted."""
        state = state or self.states[0]
        if state not in self.states:
            raise ValueError(f"state must be one of {self.states}, not {state!r}")
        self.flush()
        start = self.offsets[labeling]
        stop = start + len(self.labelings[labeling])
        index = self.states.index(state)
        rows = slice(index * self.H, (index + 1) * self.H)
        sums = to_numpy(self.sums[:, start:stop, rows]).transpose(1, 0, 2, 3)
        counts = self.count(labeling)[:, :, None, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def G_bar(self, state: str | None = None):
        """Eq. (1): Gbar_k = mean over all positions t of G_{t,k}, for k = 0..K: (K+1, H, E)."""
        return self.G_bar_per_class("all", state)[0]

    def count(self, labeling: str = "all"):
        """Number of positions behind each mean: (C, K+1)."""
        start = self.offsets[labeling]
        return self.counts[:, start:start + len(self.labelings[labeling])].T.copy()


def sweep_state_gradients(params, streams, labelings: dict, label_names: dict, K: int,
                          window: int = 50, progress=None, sums=None, cell=None):
    """Read the text with the LSTM (or ``cell``) and sum the state gradients of every delay 0..K.

    The text is B parallel streams (like training); the state (h, c) and the tangents J are
    carried from window to window, so that G_{t,k} is exact for every t >= k in a stream. Slots
    whose source position lies before the stream's start are counted in no class.

    Args:
        params: the LM's arrays (on the backend that should do the work).
        streams: (B, N) word ids.   labelings: {name: (B, N) int class ids, -1 = none}.
        label_names: {name: [class names]}.   K: largest delay.   window: steps between flushes.
        progress: optional callable(n) told after every step that n more positions are done.
        sums: where to add them (anything with StateGradientSums' add and flush; default: new).
        cell: ``LSTM`` (default) or cells.py's GRU or RNN (state h only).
    Returns:
        StateGradientSums with the sums and counts.
    """
    B, N = streams.shape
    if N <= K:
        raise ValueError(f"delay {K} is larger than the text (each of the {B} streams has {N} "
                         "words); use a smaller K or more text")
    xp = get_array_module(params["W_h"])
    W_x, W_h, b, emb = params["W_x"], params["W_h"], params["b"], params["embedding"]
    H, E = W_h.shape[1], W_x.shape[1]
    cell = cell or LSTM
    sums = StateGradientSums(label_names, K, H, E, xp, cell.states) if sums is None else sums
    all_labels = {"all": np.zeros_like(streams), **labelings}
    # labels padded with K "-1" columns on the left: column t + K - k holds the word at t - k
    padded = {n: np.concatenate([np.full((B, K), -1), lab], axis=1)     # (B, K + N) each
              for n, lab in all_labels.items()}
    tokens = xp.asarray(streams)
    h = xp.zeros((B, H), dtype=W_h.dtype)                    # (B, H)
    c = xp.zeros((B, H), dtype=W_h.dtype)                    # (B, H)
    J = xp.zeros((B, len(cell.states), K + 1, E, H), W_h.dtype)  # (B, S, K+1, E, H), fast layout
    J_next = xp.empty_like(J)                                # second buffer, swapped every step
    delays = np.arange(K + 1)                                                       # (K+1,)
    for t in range(N):
        h, c, cache = cell.step_forward(emb[tokens[:, t]], h, c, W_x, W_h, b)
        J, J_next = cell.tangent_step_fast_in_place(J, cache, W_x, W_h, out=J_next), J
        source = t + K - delays                              # (K+1,) column of x_{t-k}
        sums.add(J, {n: p[:, source] for n, p in padded.items()})
        if (t + 1) % window == 0:
            sums.flush()
        if progress is not None:
            progress(B)
    sums.flush()
    return sums


# --- 7. Measures: SVD (eq. 1), property vectors (eq. 2), cos(d, H_n) (eq. 3-4), m (eq. 5-6) ---

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


# --- 8. A one-second demo: python lstm_memory.py ----------------------------------------------

def demo(seed: int = 0, T: int = 8, k: int = 3):
    """A tiny random LSTM reads T random words; prints G_{T-1,k} = dc_{T-1}/dx_{T-1-k} by the plain
    tangent step, by the fast one and by central finite differences, then sigma_1 and the sum of
    the singular values of Gbar_tau (eq. 1) over a longer random text."""
    rng = np.random.default_rng(seed)
    V, E, H = 7, 3, 4
    params = init_params(V, E, H, seed=seed, scale=0.8, dtype=np.float64)
    params["b"] = rng.normal(0.0, 0.5, 4 * H)                       # non-zero biases
    W_x, W_h, b = params["W_x"], params["W_h"], params["b"]
    X = params["embedding"][rng.integers(0, V, T)][None]             # (1, T, E) one stream

    zero, eps = np.zeros((1, H)), 1e-6
    c_T = lambda X: lstm_forward(X, zero, zero, W_x, W_h, b)[1][1][0]   # noqa: E731 (H,) c_{T-1}
    Jc = Jh = np.zeros((1, k + 1, H, E))                             # plain tangents
    J, J_next = np.zeros((1, 2, k + 1, E, H)), np.empty((1, 2, k + 1, E, H))   # fast tangents
    for cache in lstm_forward(X, zero, zero, W_x, W_h, b)[2]:
        Jc, Jh = tangent_step(Jc, Jh, cache, W_x, W_h)
        J, J_next = tangent_step_fast_in_place(J, cache, W_x, W_h, out=J_next), J
    plain, fast = Jc[0, k], tangents_in_paper_orientation(J)[0][0, k]   # (H, E) each
    finite_differences = np.zeros((H, E))
    for e in range(E):                                               # nudge x_{T-1-k} along e
        nudge = np.zeros_like(X)
        nudge[0, T - 1 - k, e] = eps
        finite_differences[:, e] = (c_T(X + nudge) - c_T(X - nudge)) / (2 * eps)
    np.set_printoptions(precision=6, suppress=True)
    print(f"G_{{t,{k}}} = dc_t/dx_{{t-{k}}} at t = {T - 1} (H = {H} rows, E = {E} columns)")
    for name, G in (("plain tangent step", plain), ("fast tangent step (folded, transposed)", fast),
                    ("central finite differences", finite_differences)):
        print(f"{name}:\n{G}")
    print(f"largest difference, plain vs finite differences: "
          f"{np.abs(plain - finite_differences).max():.1e}\n"
          f"largest difference, fast vs plain: {np.abs(fast - plain).max():.1e}\n")
    streams = rng.integers(0, V, (4, 200))                           # (B, N) random text
    S = singular_values(sweep_state_gradients(params, streams, {}, {}, K=6).G_bar())  # (K+1, E)
    print("Gbar_tau over 4 x 200 random words (eq. 1): tau, sigma_1, sum of sigma")
    for tau, s in enumerate(S):
        print(f"  {tau}  {s[0]:.4f}  {s.sum():.4f}")


if __name__ == "__main__":
    demo()
