"""Two more recurrent cells for the state-gradient analysis: a GRU and a vanilla (Elman) RNN.

Read after lstm_memory.py: the same pieces in the same order, for cells with one state, h (no cell
state c), so that the paper's question (how much of x_{t-k} is left in the state at t?) can be
asked of them too.

  1. GRU step         forward and backward of one time step (gate order r, u, n)
  2. RNN step         h_t = tanh(W_x x_t + W_h h_{t-1} + b)
  3. BPTT             a window forward and backward, one loop for both cells
  4. state gradients  the tangent steps straight from the equations, then folded into one H x H
                      matrix per stream and step, and the one fast transposed step of both cells
  5. the cells        GRU and RNN behind the LSTM's interface (lstm_memory.LSTM), and CELLS

The GRU is the variant of Cho et al. (2014) and of TensorFlow's GRUCell, which the authors' code
used: the reset gate multiplies h_{t-1} BEFORE the product with W_h, W_hn (r * h_{t-1}); PyTorch's
nn.GRU and cuDNN apply it after, r * (W_hn h_{t-1} + b_hn), a different cell.

Letters as in lstm_memory.py (B streams, T steps, E embedding size, H state size, K largest delay);
G gate blocks of H rows in W_x (G H, E), W_h (G H, H), b (G H,): 3 for the GRU, 1 for the RNN.
``da`` is dLoss/d(pre-activations a_t = W_x x_t + ... + b); forward-mode tangents are ``Jh``.
This module imports lstm_memory, never the reverse.
"""
from __future__ import annotations

from functools import partial
from types import SimpleNamespace

from lstm_memory import LSTM, get_array_module, sigmoid


# --- 1. GRU step --------------------------------------------------------------------------------

def gru_step_forward(x, h_prev, W_x, W_h, b, a_x=None):
    """One GRU step on a batch.

    Equations (gate order r, u, n along the 3H axis; sigma the sigmoid):
        r = sigma(W_xr x_t + W_hr h_{t-1} + b_r)               reset gate
        u = sigma(W_xu x_t + W_hu h_{t-1} + b_u)               update gate
        n = tanh(W_xn x_t + W_hn (r * h_{t-1}) + b_n)          candidate (reset before W_hn)
        h_t = u * h_{t-1} + (1 - u) * n

    Args:
        x: (B, E) input embeddings x_t.   h_prev: (B, H) state at t-1.
        W_x: (3H, E).   W_h: (3H, H).   b: (3H,).
        a_x: (B, 3H) the input part W_x x_t + b when the caller has it (``window_forward``).
    Returns:
        h (B, H), cache (everything the backward pass and the tangents need; ``h_in`` (B, 3, H)
        holds the vector each gate block of W_h multiplies: h_{t-1}, h_{t-1}, r * h_{t-1}).
    """
    xp = get_array_module(h_prev)
    H = h_prev.shape[1]
    if a_x is None:
        a_x = x @ W_x.T + b                                     # (B, 3H)
    a_ru = a_x[:, :2 * H] + h_prev @ W_h[:2 * H].T              # (B, 2H)
    r = sigmoid(a_ru[:, :H])                                    # (B, H)
    u = sigmoid(a_ru[:, H:])                                    # (B, H)
    rh = r * h_prev                                             # (B, H)
    n = xp.tanh(a_x[:, 2 * H:] + rh @ W_h[2 * H:].T)            # (B, H)
    h = u * h_prev + (1.0 - u) * n                              # (B, H)
    cache = dict(x=x, h_prev=h_prev, r=r, u=u, n=n, W_x=W_x, W_h=W_h,
                 h_in=xp.stack([h_prev, h_prev, rh], axis=1))  # (B, 3, H)
    return h, cache


def gru_step_backward(dh, cache):
    """Backward of ``gru_step_forward`` down to its pre-activations.

    Equations (each line below names the node the gradient flows through):
        dn = dh (1 - u)                  du = dh (h_{t-1} - n)
        da_n = dn (1 - n^2)              da_u = du u (1 - u)
        d(rh) = da_n W_hn                da_r = d(rh) h_{t-1} r (1 - r)
        dh_{t-1} = dh u + d(rh) r + da_r W_hr + da_u W_hu
    The rest follows from da alone: dx_t = da W_x, dW_x = da^T x_t, db = sum_batch da, and block g
    of dW_h = da_g^T h_in[:, g]; ``window_backward`` forms them for a whole window at once.

    Args:
        dh: (B, H) dL/dh_t.   cache: from the forward step.
    Returns:
        da (B, 3H), dh_prev (B, H).
    """
    xp = get_array_module(dh)
    r, u, n, h_prev, W_h = cache["r"], cache["u"], cache["n"], cache["h_prev"], cache["W_h"]
    H = h_prev.shape[1]
    dn = dh * (1.0 - u)                                         # through h = ... + (1 - u) n
    du = dh * (h_prev - n)                                      # through h = u h_prev + (1 - u) n
    da_n = dn * (1.0 - n ** 2)                                  # through n = tanh(a_n)
    da_u = du * u * (1.0 - u)                                   # through u = sigma(a_u)
    drh = da_n @ W_h[2 * H:]                                    # through W_hn (r h_prev)
    da_r = drh * h_prev * r * (1.0 - r)                         # through r h_prev, r = sigma(a_r)
    da = xp.concatenate([da_r, da_u, da_n], axis=1)             # (B, 3H)
    dh_prev = dh * u                                            # through u * h_prev
    dh_prev += drh * r                                          # through r * h_prev
    dh_prev += da[:, :2 * H] @ W_h[:2 * H]                      # through W_hr h_prev, W_hu h_prev
    return da, dh_prev


# --- 2. Vanilla RNN step ------------------------------------------------------------------------

def rnn_step_forward(x, h_prev, W_x, W_h, b, a_x=None):
    """One Elman RNN step on a batch.

    Equations (one "gate"):
        h_t = tanh(W_x x_t + W_h h_{t-1} + b)

    Args:
        x: (B, E).   h_prev: (B, H).   W_x: (H, E).   W_h: (H, H).   b: (H,).
        a_x: (B, H) the input part W_x x_t + b when the caller has it.
    Returns:
        h (B, H), cache (``h_in`` (B, 1, H): h_{t-1}, the vector W_h multiplies).
    """
    xp = get_array_module(h_prev)
    if a_x is None:
        a_x = x @ W_x.T + b                                     # (B, H)
    h = xp.tanh(a_x + h_prev @ W_h.T)                           # (B, H)
    cache = dict(x=x, h_prev=h_prev, h=h, W_x=W_x, W_h=W_h, h_in=h_prev[:, None])  # (B, 1, H)
    return h, cache


def rnn_step_backward(dh, cache):
    """Backward of ``rnn_step_forward``.

    Equations:
        da = dh (1 - h_t^2)              dh_{t-1} = da W_h

    Args:
        dh: (B, H) dL/dh_t.   cache: from the forward step.
    Returns:
        da (B, H), dh_prev (B, H).
    """
    da = dh * (1.0 - cache["h"] ** 2)                           # through h = tanh(a)
    dh_prev = da @ cache["W_h"]                                 # through a = ... + W_h h_prev
    return da, dh_prev


# --- 3. Backpropagation through time over one window, for either cell ---------------------------

def window_forward(cell, X, h0, W_x, W_h, b):
    """Run ``cell``'s step over a window, the input part W_x x_t + b of all steps in one product.

    Args:
        cell: ``GRU`` or ``RNN``.   X: (B, T, E).   h0: (B, H) state carried in.
        W_x: (G H, E).   W_h: (G H, H).   b: (G H,).
    Returns:
        hs (B, T, H) all states, h_T (B, H) the state to carry on, caches (one per step).
    """
    xp = get_array_module(X)
    B, T, E = X.shape
    A_x = (X.reshape(B * T, E) @ W_x.T + b).reshape(B, T, -1)  # (B, T, G H)
    hs = xp.empty((B, T, h0.shape[1]), dtype=X.dtype)         # (B, T, H)
    h, caches = h0, []
    for t in range(T):
        h, cache = cell.step_forward_pure(X[:, t], h, W_x, W_h, b, a_x=A_x[:, t])
        hs[:, t] = h
        caches.append(cache)
    return hs, h, caches


def window_backward(cell, dhs, dh_T, caches):
    """Backpropagation through time over the window that produced ``caches``.

    Args:
        cell: ``GRU`` or ``RNN``.   dhs: (B, T, H) dL/dh_t from the layer above.
        dh_T: (B, H) gradient from beyond the window (zero in truncated BPTT).
    Returns:
        dX (B, T, E), dh0 (B, H), grads summed over steps {'W_x', 'W_h', 'b'}.
    """
    xp = get_array_module(dhs)
    B, T, H = dhs.shape
    G = cell.gates
    dA = xp.empty((B, T, G * H), dtype=dhs.dtype)                        # (B, T, G H)
    dh = dh_T
    for t in reversed(range(T)):
        dA[:, t], dh = cell.step_backward(dhs[:, t] + dh, caches[t])
    # the gradients that follow from da (see gru_step_backward), for all steps at once
    dA = dA.reshape(B * T, G * H)                                        # (BT, G H)
    X = xp.stack([cache["x"] for cache in caches], axis=1).reshape(B * T, -1)           # (BT, E)
    H_in = xp.stack([cache["h_in"] for cache in caches], axis=1).reshape(B * T, G, H)   # (BT, G, H)
    dX = (dA @ caches[0]["W_x"]).reshape(B, T, -1)                      # (B, T, E)
    # block g of W_h multiplies h_in[:, g]: dW_h[g] = da_g^T h_in[:, g], one product per block
    dW_h = xp.matmul(dA.reshape(B * T, G, H).transpose(1, 2, 0), H_in.transpose(1, 0, 2))
    grads = {"W_x": dA.T @ X, "W_h": dW_h.reshape(G * H, H), "b": dA.sum(axis=0)}
    return dX, dh, grads


# --- 4. State gradients in forward mode ---------------------------------------------------------
# As in lstm_memory.py: Jh_{t,k} = dh_t/dx_{t-k} (B, K+1, H, E), carried from step to step. The
# plain steps come first, straight from the equations; the folded form follows.

def gru_tangent_step(Jh_prev, cache, W_x, W_h):
    """One step of the GRU's tangent recurrence, straight from the equations (the plain form).

    Equations (Jx = dx_t/dx_{t-k}: I for k = 0, else 0; Jhp = Jh_{t-1,k-1}: 0 for k = 0;
    a (B, H) factor scales the rows of each (H, E) block):
        Ja_r = W_xr Jx + W_hr Jhp
        Ja_u = W_xu Jx + W_hu Jhp
        Ja_n = W_xn Jx + W_hn (r Jhp + h_{t-1} r (1 - r) Ja_r)
        Jh_{t,k} = u Jhp + (h_{t-1} - n) u (1 - u) Ja_u + (1 - u) (1 - n^2) Ja_n
    (At k = 0, r depends on x_t: Ja_n = W_xn + W_hn diag(h_{t-1} r (1 - r)) W_xr.)

    Args:
        Jh_prev: (B, K+1, H, E) tangents at t-1, Jh_prev[b, k] = dh_{t-1}/dx_{t-1-k}.
        cache: from ``gru_step_forward`` at step t.   W_x: (3H, E).   W_h: (3H, H).
    Returns:
        Jh: (B, K+1, H, E) at t; Jh[b, k] = G_{t,k} of the state h.
    """
    xp = get_array_module(Jh_prev)
    r, u, n, h_prev = (cache[name][:, :, None] for name in ("r", "u", "n", "h_prev"))  # (B, H, 1)
    B, n_delays, H, E = Jh_prev.shape
    W_hr, W_hu, W_hn = W_h[:H], W_h[H:2 * H], W_h[2 * H:]
    Jh = xp.empty_like(Jh_prev)                                           # (B, K+1, H, E)
    for k in range(n_delays):
        if k == 0:
            Ja_x = xp.broadcast_to(W_x, (B, 3 * H, E))                    # (B, 3H, E) x_t itself
            Jhp = xp.zeros((B, H, E), dtype=Jh_prev.dtype)                # h_{t-1} is before x_t
        else:
            Ja_x = xp.zeros((B, 3 * H, E), dtype=Jh_prev.dtype)           # x_t is after x_{t-k}
            Jhp = Jh_prev[:, k - 1]                                       # (B, H, E)
        Ja_r = Ja_x[:, :H] + W_hr @ Jhp                                   # (B, H, E)
        Ja_u = Ja_x[:, H:2 * H] + W_hu @ Jhp                              # (B, H, E)
        Ja_n = Ja_x[:, 2 * H:] + W_hn @ (r * Jhp + h_prev * r * (1 - r) * Ja_r)
        Jh[:, k] = u * Jhp + (h_prev - n) * u * (1 - u) * Ja_u + (1 - u) * (1 - n ** 2) * Ja_n
    return Jh


def rnn_tangent_step(Jh_prev, cache, W_x, W_h):
    """One step of the RNN's tangent recurrence (the plain form).

    Equations:
        Jh_{t,0} = (1 - h_t^2) W_x
        Jh_{t,k} = (1 - h_t^2) W_h Jh_{t-1,k-1}          (k >= 1)

    Args: Jh_prev (B, K+1, H, E); cache, from ``rnn_step_forward``; W_x (H, E); W_h (H, H).
    Returns: Jh (B, K+1, H, E) at t.
    """
    xp = get_array_module(Jh_prev)
    q = 1 - cache["h"][:, :, None] ** 2                                   # (B, H, 1) tanh'
    Jh = xp.empty_like(Jh_prev)                                           # (B, K+1, H, E)
    Jh[:, 0] = q * W_x
    for k in range(1, Jh_prev.shape[1]):
        Jh[:, k] = q * (W_h @ Jh_prev[:, k - 1])
    return Jh


# The same steps, faster, as lstm_memory.tangent_step_fast_in_place does it for the LSTM: the gate
# factors of a step do not depend on k, so they fold into one (H x H) matrix M_h = dh_t/dh_{t-1}
# per stream (and M_x = dh_t/dx_t); the tangents are stored transposed, all delays of a stream one
# contiguous (K E, H) matrix, and one product per stream advances them all.

def gru_fold(cache, W_x, W_h):
    """The GRU's step as two matrices: Jh_{t,0} = M_x, Jh_{t,k} = M_h Jh_{t-1,k-1}.

    Equations (``gru_tangent_step``'s, regrouped; diag(v) scales rows):
        alpha = (h_{t-1} - n) u (1 - u)     beta = (1 - u) (1 - n^2)     gamma = h_{t-1} r (1 - r)
        M_x = diag(alpha) W_xu + diag(beta) [W_xn + W_hn diag(gamma) W_xr]
        M_h = diag(u) + diag(alpha) W_hu + diag(beta) W_hn [diag(r) + diag(gamma) W_hr]
    Args: cache, from ``gru_step_forward`` (B streams); W_x (3H, E); W_h (3H, H).
    Returns: M_x (B, H, E) = dh_t/dx_t, M_h (B, H, H) = dh_t/dh_{t-1}.
    """
    xp = get_array_module(W_h)
    r, u, n, h_prev = cache["r"], cache["u"], cache["n"], cache["h_prev"]
    B, H = r.shape
    E = W_x.shape[1]
    alpha = ((h_prev - n) * u * (1 - u))[:, :, None]                      # (B, H, 1) via u
    beta = ((1 - u) * (1 - n ** 2))[:, :, None]                           # (B, H, 1) via n
    gamma = (h_prev * r * (1 - r))[:, :, None]                            # (B, H, 1) via r
    # d(r * h_{t-1}) / d[x_t, h_{t-1}], both blocks side by side: (B, H, E + H)
    d_rh = xp.concatenate([gamma * W_x[:H], gamma * W_h[:H]], axis=2)
    units = xp.arange(H)
    d_rh[:, units, E + units] += r                                        # + diag(r) (h part)
    Wn_d_rh = xp.matmul(W_h[2 * H:], d_rh)                                # (B, H, E + H) W_hn [..]
    M_x = alpha * W_x[H:2 * H] + beta * (W_x[2 * H:] + Wn_d_rh[:, :, :E])  # (B, H, E)
    M_h = alpha * W_h[H:2 * H] + beta * Wn_d_rh[:, :, E:]                 # (B, H, H)
    M_h[:, units, units] += u                                             # + diag(u)
    return M_x, M_h


def rnn_fold(cache, W_x, W_h):
    """The RNN's step as two matrices: M_x = diag(1 - h_t^2) W_x (B, H, E) and
    M_h = diag(1 - h_t^2) W_h (B, H, H)."""
    q = 1 - cache["h"][:, :, None] ** 2                                   # (B, H, 1)
    return q * W_x, q * W_h


def one_state_tangent_step_fast_in_place(fold, J_prev, cache, W_x, W_h, out):
    """A one-state cell's tangent step, folded and transposed: all delays advanced by one step.

    Equations (M_x, M_h from ``fold``, e.g. ``gru_fold``):
        Jh_{t,0} = M_x,     Jh_{t,k} = M_h Jh_{t-1,k-1}   (k = 1..K)
    stored transposed, so the second is Jh_{t-1,k-1}^T M_h^T for all k in one product.

    Args:
        fold: ``gru_fold`` or ``rnn_fold``.
        J_prev: (B, 1, K+1, E, H) tangents at t-1, J_prev[b, 0, k] = Jh_{t-1,k}^T.
        cache: from the cell's step forward at t.   W_x: (G H, E).   W_h: (G H, H).
        out: C-contiguous (B, 1, K+1, E, H) buffer (not J_prev) that receives the tangents at t.
    Returns: ``out``; out[:, 0].transpose(0, 1, 3, 2) is Jh (B, K+1, H, E).
    """
    xp = get_array_module(J_prev)
    B, _, n_delays, E, H = J_prev.shape
    if not out.flags.c_contiguous or out is J_prev:
        raise ValueError("out must be a C-contiguous buffer other than J_prev")
    M_x, M_h = fold(cache, W_x, W_h)                          # (B, H, E), (B, H, H)
    out[:, 0, 0] = M_x.transpose(0, 2, 1)                     # k = 0: dh_t/dx_t
    rows = (n_delays - 1) * E                                 # delays 0..K-1 at t-1 -> 1..K at t
    source = J_prev.reshape(B, n_delays * E, H)[:, :rows]     # (B, K E, H)
    target = out.reshape(B, n_delays * E, H)[:, E:]           # (B, K E, H) a view of out
    # the one large product: (B, K E, H) @ (B, H, H) -> (B, K E, H), i.e. M_h Jh for all k
    xp.matmul(source, M_h.transpose(0, 2, 1), out=target)
    return out


# --- 5. The cells behind the LSTM's interface ----------------------------------------------------
# lstm_memory.lm_loss_and_grads, the sweep and the scripts call a cell with the LSTM's signatures,
# state (h, c). A one-state cell carries c through untouched (the scripts pass zeros), so the
# scripts' window loop is one loop for every cell.

def lm_step_forward(cell, x, h, c, W_x, W_h, b):
    """(x, h, c, W_x, W_h, b) -> (h_t, c unchanged, cache), the LSTM's step signature."""
    h, cache = cell.step_forward_pure(x, h, W_x, W_h, b)
    return h, c, cache


def lm_forward(cell, X, h0, c0, W_x, W_h, b):
    """(X, h0, c0, W_x, W_h, b) -> hs, (h_T, c0), caches, as lstm_memory.lstm_forward."""
    hs, h_T, caches = window_forward(cell, X, h0, W_x, W_h, b)
    return hs, (h_T, c0), caches


def lm_backward(cell, dhs, dh_T, dc_T, caches):
    """(dhs, dh_T, dc_T, caches) -> dX, dh0, dc_T (as it came: c touches nothing), grads."""
    dX, dh0, grads = window_backward(cell, dhs, dh_T, caches)
    return dX, dh0, dc_T, grads


def one_state_cell(name, gates, step_forward, step_backward, tangent_step, fold):
    """A cell object with the interface of lstm_memory.LSTM, plus its own pure functions."""
    cell = SimpleNamespace(name=name, states=("h",), gates=gates,
                           step_forward_pure=step_forward, step_backward=step_backward,
                           tangent_step=tangent_step, fold=fold,
                           tangent_step_fast_in_place=partial(one_state_tangent_step_fast_in_place,
                                                              fold))
    cell.step_forward = partial(lm_step_forward, cell)      # -> (h, c, cache)
    cell.forward = partial(lm_forward, cell)                # -> hs, (h_T, c0), caches
    cell.backward = partial(lm_backward, cell)              # -> dX, dh0, dc_T, grads
    return cell


GRU = one_state_cell("gru", 3, gru_step_forward, gru_step_backward, gru_tangent_step, gru_fold)
RNN = one_state_cell("rnn", 1, rnn_step_forward, rnn_step_backward, rnn_tangent_step, rnn_fold)

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}               # train.py --cell, checkpoints' "cell"
