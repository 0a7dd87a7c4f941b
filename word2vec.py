"""word2vec CBOW with negative sampling: the frozen embeddings of the paper's second LM.

The paper's second LM reads word2vec CBOW vectors (default word2vec parameters: window 5, 5
negative samples, sub-sampling 1e-3, min count 5), trained first and frozen. Read top to bottom:

  1. the loss      ``context_mean`` and ``cbow_loss_and_grads``: the negative-sampling loss of a
                   batch of context means and its gradients (checked by finite differences)
  2. the update    ``cbow_step``: word2vec.c's update rule on a batch, in place
  3. training      ``train_cbow`` over the text with word2vec.c's rules (``cbow_text``: what it
                   reads and how it samples), and ``nearest_neighbours`` to look at the result
"""
from __future__ import annotations

import sys

import numpy as np

from lstm_memory import get_array_module, scatter_add_rows, sigmoid, to_numpy


# ----------------------------------------------------------------------------------------------
# 1. The loss
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
        (``cbow_step``); dL/dW_in would be dh_n / |context_n|.
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
# 2. word2vec.c's update, and 3. training
# ----------------------------------------------------------------------------------------------

def cbow_step(W_in, W_out, contexts, context_mask, centers, negatives, rate):
    """One word2vec.c CBOW update of a batch of windows, in place; returns the batch's loss.

    As word2vec.c (cbow_mean = 1): h = mean of the context vectors, the error
    neu1e = -rate * dL/dh is added undivided to the vector of every context word, and
    W_out[target] -= rate * dL/dW_out[target]; both use W_out from before the update.

    Args: W_in, W_out (V, E), updated in place; contexts, context_mask (N, 2w); centers (N,);
    negatives (N, k); rate: the learning rate of this batch.
    """
    h = context_mean(W_in, contexts, context_mask)                       # (N, E)
    loss, dh, dW_out = cbow_loss_and_grads(h, W_out, centers, negatives)
    words = contexts.reshape(-1)[context_mask.reshape(-1) > 0]              # (M,) real context words
    xp = get_array_module(dh)
    errors = xp.repeat(-rate * dh, contexts.shape[1], axis=0)                 # (N * 2w, E)
    scatter_add_rows(W_in, words, errors[context_mask.reshape(-1) > 0])  # neu1e, undivided
    W_out -= rate * dW_out
    return loss


def train_cbow(ids, V: int, E: int, eos_id=None, window=5, negative=5, sample=1e-3, min_count=5,
               epochs=5, lr=0.05, seed=0, batch_size=128, progress=None, xp=np):
    """word2vec CBOW with negative sampling at word2vec.c's defaults, minibatched.

    As in word2vec.c: words rarer than ``min_count`` are skipped (they keep their initial vectors);
    a window never crosses a sentence end: ``eos_id`` (word2vec's ``</s>``) ends the sentence and is
    itself never a centre or a context word (it keeps its initial vector U(-0.5/E, 0.5/E));
    frequent words are sub-sampled (keep probability (sqrt(f / (s N)) + 1) s N / f, N the words
    read, ``</s>`` included); the window is shrunk at random to 1..window; negatives are drawn from
    the unigram distribution to the 3/4; the learning rate (0.05, CBOW's default) falls linearly
    to 0 over the words read in all epochs; the update rule is ``cbow_step``. Unlike word2vec.c,
    ``batch_size`` centres are updated at once (their gradients summed), as its threads do without
    locks. ``progress``: optional callable(iterable, description) wrapping each epoch's batches
    (a progress bar).

    Returns W_in (V, E), the embeddings, on ``xp``, and the loss per epoch (list of floats).
    """
    rng = np.random.default_rng(seed)
    stream, sentence, keep_prob, noise = cbow_text(ids, V, eos_id, sample, min_count)
    total = stream.size
    W_in = xp.asarray(rng.uniform(-0.5 / E, 0.5 / E, (V, E)))        # (V, E)
    W_out = xp.zeros((V, E))                                           # (V, E)
    offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])   # (2w,)
    losses = []
    for epoch in range(epochs):
        kept = np.flatnonzero(rng.random(total) < keep_prob[stream])  # positions that survive
        words, sentences = stream[kept], sentence[kept]                # sub-sampled text (n,)
        n = words.size
        loss_sum = 0.0
        batches = range(0, n, batch_size)
        for start in progress(batches, f"cbow epoch {epoch + 1}/{epochs}") if progress else batches:
            centers = np.arange(start, min(start + batch_size, n))     # (N,) positions
            reach = window - rng.integers(0, window, centers.size)     # (N,) shrunk window
            positions = np.clip(centers[:, None] + offsets, 0, n - 1)  # (N, 2w)
            mask = ((np.abs(offsets) <= reach[:, None])
                    & (centers[:, None] + offsets >= 0) & (centers[:, None] + offsets < n)
                    & (sentences[positions] == sentences[centers][:, None]))   # same sentence
            has_context = mask.any(axis=1)                             # word2vec skips cw = 0
            centers, positions, mask = centers[has_context], positions[has_context], mask[has_context]
            if centers.size == 0:
                continue
            negatives = rng.choice(V, size=(centers.size, negative), p=noise)
            done = (epoch * total + kept[centers[0]]) / (epochs * total)  # words read, as word2vec
            rate = lr * max(1e-4, 1.0 - done)
            loss_sum += cbow_step(W_in, W_out, xp.asarray(words[positions]),
                                  xp.asarray(mask, dtype=W_in.dtype), xp.asarray(words[centers]),
                                  xp.asarray(negatives), rate)
        losses.append(loss_sum / max(n, 1))
        print(f"cbow epoch {epoch + 1}: loss per word {losses[-1]:.4f}", file=sys.stderr)
    return W_in, losses


def cbow_text(ids, V: int, eos_id, sample: float, min_count: int):
    """What word2vec.c reads of ``ids`` (N0,) and how it samples it (``train_cbow``'s rules).

    Returns the words read (N,), their sentence numbers (N,), each word type's keep probability
    under sub-sampling (V,), and the noise distribution of the negatives (V,).
    """
    counts = np.bincount(ids, minlength=V).astype(np.float64)
    in_vocab = counts >= min_count
    if eos_id is not None:
        in_vocab[eos_id] = True
    stream = ids[in_vocab[ids]]                    # the words word2vec reads (N,)
    total = stream.size
    sentence = (np.cumsum(stream == eos_id) if eos_id is not None   # sentence number per word (N,)
                else np.zeros(total, dtype=np.int64))
    keep_prob = (np.minimum(1.0, (np.sqrt(counts / (sample * total)) + 1) * sample * total
                            / np.maximum(counts, 1)) if sample > 0 else np.ones(V))   # 0: off
    if eos_id is not None:
        keep_prob[eos_id] = 0.0                    # </s> ends a sentence; it is never trained
    noise = np.where(in_vocab, counts, 0.0) ** 0.75
    if eos_id is not None:
        noise[eos_id] = 0.0
    if noise.sum() == 0:
        raise ValueError(f"no word of the training text occurs --cbow-min-count {min_count} times: "
                         "lower --cbow-min-count or give more text")
    noise /= noise.sum()
    return stream, sentence, keep_prob, noise


def nearest_neighbours(embeddings, vocab, words, k=5):
    """The k nearest words by cosine for each of ``words`` that is in the vocabulary."""
    emb = to_numpy(embeddings)
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    index = {w: i for i, w in enumerate(vocab)}
    result = {}
    for w in words:
        if w in index:
            sims = unit @ unit[index[w]]
            order = [j for j in np.argsort(-sims) if j != index[w]][:k]
            result[w] = [vocab[j] for j in order]
    return result
