"""word2vec CBOW: the update rule by hand, sentence ends, and training that learns.
(The loss's gradients are checked against finite differences in test_gradients.py.)"""
import numpy as np

import corpus
import word2vec
from tool import corpora, languages


def test_cbow_loss_falls_and_neighbours_make_sense():
    data = corpora.load_corpus("generated")
    # sample=1 turns sub-sampling off: every word of this 60-word language is "frequent"
    W_in, losses = word2vec.train_cbow(data.ids["train"], len(data.vocab), 8, min_count=1, epochs=5,
                                    sample=1.0, progress=None,
                                    eos_id=data.word_to_id[corpus.EOS])
    chance = 6 * np.log(2)                  # untrained: s(score) = 1/2 for the word and 5 negatives
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.65 * chance
    near = word2vec.nearest_neighbours(W_in, data.vocab, ["cats"], k=8)["cats"]
    plural_nouns = set(languages.LEXICON["NNS"])
    assert len(plural_nouns & set(near)) >= 6          # same slot and number in the grammar


def test_cbow_step_follows_word2vec_c_on_a_hand_worked_example():
    """Contexts 0 and 1, centre 2, negative 0; h = (w0 + w1) / 2 = (.5, .5) is orthogonal to both
    output vectors, so both scores are 0 and s(0) = 1/2:
        dL/dh = (s(0) - 1) u2 + s(0) u0 = -0.5 (1, -1) + 0.5 (0, 0) = (-0.5, 0.5)
        neu1e = -rate dL/dh = (0.05, -0.05), added undivided to w0 and w1 (the exact gradient of
        the mean would add half of it)
        u2 -= rate (s(0) - 1) h = u2 + (0.025, 0.025);  u0 -= rate s(0) h = u0 - (0.025, 0.025)
    """
    W_in = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    W_out = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, -1.0]])
    loss = word2vec.cbow_step(W_in, W_out, np.array([[0, 1]]), np.array([[1.0, 1.0]]), np.array([2]),
                           np.array([[0]]), rate=0.1)
    assert np.isclose(loss, 2 * np.log(2))
    np.testing.assert_allclose(W_in, [[1.05, -0.05], [0.05, 0.95], [0.0, 0.0]])
    np.testing.assert_allclose(W_out, [[-0.025, -0.025], [0.0, 0.0], [1.025, -0.975]])
    # padding gets nothing, and a negative equal to the centre is skipped (word2vec.c)
    W_in2, W_out2 = W_in.copy(), W_out.copy()
    loss = word2vec.cbow_step(W_in2, W_out2, np.array([[0, 1]]), np.array([[1.0, 0.0]]), np.array([2]),
                           np.array([[2]]), rate=0.1)
    h = W_in[0]                                                        # only context 0 is real
    s = 1 / (1 + np.exp(-(h @ W_out[2])))
    assert np.isclose(loss, -np.log(s))
    np.testing.assert_allclose(W_in2[0], W_in[0] - 0.1 * (s - 1) * W_out[2])
    np.testing.assert_allclose(W_in2[1:], W_in[1:])
    np.testing.assert_allclose(W_out2[2], W_out[2] - 0.1 * (s - 1) * h)


def test_cbow_windows_stop_at_sentence_ends():
    """One-word sentences "a <eos> b <eos>": no word has a context inside its sentence, so nothing
    is trained (a window crossing <eos> would give "a" the context "b"). In "a b <eos>" both words
    learn, and <eos> (word2vec's </s>) is never trained: it keeps its initial vector."""
    a, b, eos = 0, 1, 2
    W_init = np.random.default_rng(0).uniform(-0.5 / 4, 0.5 / 4, (3, 4))   # train_cbow's first draw
    settings = dict(eos_id=eos, min_count=1, sample=1.0, epochs=2, negative=1, progress=None)
    W_in, losses = word2vec.train_cbow(np.tile([a, eos, b, eos], 200), 3, 4, **settings)
    np.testing.assert_array_equal(W_in, W_init)
    assert losses == [0.0, 0.0]
    W_in, _ = word2vec.train_cbow(np.tile([a, b, eos], 200), 3, 4, **settings)
    np.testing.assert_array_equal(W_in[eos], W_init[eos])
    assert not np.allclose(W_in[a], W_init[a]) and not np.allclose(W_in[b], W_init[b])
