"""Training on the generated corpus: learning, CBOW, checkpoints, resume, interruption, bad input."""
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import corpus as corpora
import lstm_memory as lm
import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--device", "cpu", "--corpus", "generated", "--embedding-size", "8", "--hidden-size", "16", "--batch-size",
         "4", "--num-steps", "10", "--no-progress", "--cbow-min-count", "1"]


def run(tmp_path, *extra, name="lm.npz"):
    out = str(tmp_path / name)
    code = train.main([*SMALL, "--out", out, *extra])
    return code, out


def test_small_lm_beats_the_unigram_baseline(tmp_path):
    code, out = run(tmp_path, "--epochs", "4", "--lr", "1.0")
    assert code == 0
    _, _, meta, _ = lm.load_checkpoint(out)
    data = corpora.load_corpus("generated")
    counts = np.bincount(data.ids["train"], minlength=len(data.vocab)) + 1.0
    unigram_ppl = math.exp(-np.log(counts / counts.sum())[data.ids["valid"]].mean())
    assert meta["train"]["best_valid_ppl"] < 0.5 * unigram_ppl
    assert meta["train"]["finished"] and math.isfinite(meta["train"]["test_ppl"])


def test_cbow_loss_falls_and_neighbours_make_sense():
    data = corpora.load_corpus("generated")
    # sample=1 turns sub-sampling off: every word of this 60-word language is "frequent"
    W_in, losses = train.train_cbow(data.ids["train"], len(data.vocab), 8, min_count=1, epochs=5,
                                    sample=1.0, progress=False,
                                    eos_id=data.word_to_id[corpora.EOS])
    chance = 6 * np.log(2)                  # untrained: s(score) = 1/2 for the word and 5 negatives
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.65 * chance
    near = train.nearest_neighbours(W_in, data.vocab, ["cats"], k=8)["cats"]
    plural_nouns = set(corpora.LEXICON["NNS"])
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
    loss = train.cbow_step(W_in, W_out, np.array([[0, 1]]), np.array([[1.0, 1.0]]), np.array([2]),
                           np.array([[0]]), rate=0.1)
    assert np.isclose(loss, 2 * np.log(2))
    np.testing.assert_allclose(W_in, [[1.05, -0.05], [0.05, 0.95], [0.0, 0.0]])
    np.testing.assert_allclose(W_out, [[-0.025, -0.025], [0.0, 0.0], [1.025, -0.975]])
    # padding gets nothing, and a negative equal to the centre is skipped (word2vec.c)
    W_in2, W_out2 = W_in.copy(), W_out.copy()
    loss = train.cbow_step(W_in2, W_out2, np.array([[0, 1]]), np.array([[1.0, 0.0]]), np.array([2]),
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
    settings = dict(eos_id=eos, min_count=1, sample=1.0, epochs=2, negative=1, progress=False)
    W_in, losses = train.train_cbow(np.tile([a, eos, b, eos], 200), 3, 4, **settings)
    np.testing.assert_array_equal(W_in, W_init)
    assert losses == [0.0, 0.0]
    W_in, _ = train.train_cbow(np.tile([a, b, eos], 200), 3, 4, **settings)
    np.testing.assert_array_equal(W_in[eos], W_init[eos])
    assert not np.allclose(W_in[a], W_init[a]) and not np.allclose(W_in[b], W_init[b])


def test_cbow_model_keeps_its_embeddings_frozen(tmp_path):
    code, out = run(tmp_path, "--epochs", "1", "--embeddings", "cbow")
    assert code == 0
    params, _, meta, _ = lm.load_checkpoint(out)
    cbow = np.load(str(tmp_path / "lm.cbow.npy"))
    np.testing.assert_array_equal(params["embedding"], cbow.astype(np.float32))
    assert meta["train"]["cbow"]["loss_per_epoch"][-1] < meta["train"]["cbow"]["loss_per_epoch"][0]


def test_checkpoint_round_trip(tmp_path):
    params = lm.init_params(5, 2, 3, seed=1)
    path = str(tmp_path / "c.npz")
    lm.save_checkpoint(path, params, list("abcde"), {"x": [1, 2]}, {"h": np.ones((2, 3))})
    loaded, vocab, meta, extra = lm.load_checkpoint(path)
    assert vocab == list("abcde") and meta == {"x": [1, 2]}
    np.testing.assert_array_equal(extra["h"], np.ones((2, 3)))
    for name in params:
        np.testing.assert_array_equal(loaded[name], params[name])
    with np.load(path, allow_pickle=False) as data:                   # plain numpy can read it
        assert data["W_x"].shape == (12, 2)


def assert_same_params(path_a, path_b):
    a, _, meta_a, _ = lm.load_checkpoint(path_a)
    b, _, meta_b, _ = lm.load_checkpoint(path_b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert [h["valid_ppl"] for h in meta_a["train"]["history"]] == \
           [h["valid_ppl"] for h in meta_b["train"]["history"]]


def test_resume_equals_an_uninterrupted_run(tmp_path):
    _, straight = run(tmp_path, "--epochs", "2", "--min-improvement", "0", name="straight.npz")
    code, interrupted = run(tmp_path, "--epochs", "2", "--min-improvement", "0",
                            "--stop-after", "23", name="resumed.npz")
    assert code == 0 and not os.path.exists(interrupted)          # stopped inside epoch 1
    code, _ = run(tmp_path, "--resume", "--epochs", "2", name="resumed.npz")
    assert code == 0
    assert_same_params(straight, interrupted)
    assert_same_params(train.last_path(straight), train.last_path(interrupted))


def test_ctrl_c_saves_and_resume_finishes_the_same_run(tmp_path, monkeypatch):
    _, straight = run(tmp_path, "--epochs", "1", name="straight.npz")
    calls = {"n": 0}
    original = lm.lm_loss_and_grads

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 9:
            os.kill(os.getpid(), signal.SIGINT)                        # as if the user pressed Ctrl-C
        return original(*args, **kwargs)

    monkeypatch.setattr(lm, "lm_loss_and_grads", interrupting)
    code, out = run(tmp_path, "--epochs", "1", name="ctrlc.npz")
    monkeypatch.setattr(lm, "lm_loss_and_grads", original)
    assert code == 0 and os.path.exists(train.last_path(out))
    _, _, meta, _ = lm.load_checkpoint(train.last_path(out))
    assert meta["train"]["window"] == 9 and not meta["train"]["finished"]
    assert run(tmp_path, "--resume", name="ctrlc.npz")[0] == 0
    assert_same_params(straight, out)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    original, calls = lm.lm_loss_and_grads, {"n": 0}

    def diverging(*args, **kwargs):               # window 7 "diverges"
        calls["n"] += 1
        loss, grads, state = original(*args, **kwargs)
        return (float("nan") if calls["n"] == 7 else loss), grads, state

    monkeypatch.setattr(lm, "lm_loss_and_grads", diverging)
    code, out = run(tmp_path, "--epochs", "1", "--save-every", "5")
    assert code == 1
    assert "non-finite loss or gradient at epoch 1, window 6" in capsys.readouterr().err
    params, _, meta, _ = lm.load_checkpoint(train.last_path(out))
    assert meta["train"]["window"] == 5                 # the last good save is untouched
    assert all(np.all(np.isfinite(v)) for v in params.values())


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", None])
def test_unusable_checkpoints_are_refused_with_one_sentence(tmp_path, content):
    path = tmp_path / "bad.npz"
    if content is None:                                   # a real .npz, but not a checkpoint
        np.savez(path, weights=np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(lm.CheckpointError) as info:
        lm.load_checkpoint(str(path))
    assert "\n" not in str(info.value)


def test_truncated_checkpoint_is_refused(tmp_path):
    code, out = run(tmp_path, "--epochs", "1")
    data = open(out, "rb").read()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(lm.CheckpointError, match="not a readable checkpoint"):
        lm.load_checkpoint(str(truncated))


def test_resume_refuses_a_checkpoint_of_another_vocabulary(tmp_path, capsys):
    code, out = run(tmp_path, "--epochs", "1", "--stop-after", "3")
    params, vocab, meta, extra = lm.load_checkpoint(train.last_path(out))
    vocab[0], vocab[1] = vocab[1], vocab[0]
    lm.save_checkpoint(train.last_path(out), params, vocab, meta, extra)
    assert run(tmp_path, "--resume")[0] == 1
    assert "does not match the corpus" in capsys.readouterr().err


def test_missing_resume_file_is_one_clear_error(tmp_path, capsys):
    assert run(tmp_path, "--resume", name="nothing.npz")[0] == 1
    assert "does not exist" in capsys.readouterr().err


def test_help_and_impossible_options():
    help_text = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, text=True,
                               capture_output=True, check=True).stdout
    assert "--max-train-tokens" in help_text and "(default: 0.8)" in help_text
    bad = subprocess.run([sys.executable, "train.py", "--dropout", "1.5"], cwd=ROOT, text=True,
                         capture_output=True)
    assert bad.returncode == 2 and "--dropout must be in [0, 1)" in bad.stderr
    assert "--fixed-distance" in help_text and "--tag-column" in help_text
    with pytest.raises(SystemExit):
        train.parse_args(["--corpus", "brown", "--fixed-distance"])      # a synthetic-only option


def test_no_early_stop_before_the_learning_rate_decays(tmp_path, monkeypatch):
    """A validation blip in the constant-lr epochs must not end training (the cbow LM's epoch 6)."""
    scores = iter([50.0, 60.0, 40.0, 45.0, 44.0])
    monkeypatch.setattr(train, "evaluate", lambda *a, **k: next(scores, 1.0))
    code, out = run(tmp_path, "--epochs", "5", "--decay-after", "2", "--min-improvement", "0")
    _, _, meta, _ = lm.load_checkpoint(out)
    history = [h["valid_ppl"] for h in meta["train"]["history"]]
    assert history == [50.0, 60.0, 40.0, 45.0]           # epoch 2 worse: goes on; epoch 4: stops
    assert meta["train"]["best_valid_ppl"] == 40.0


def test_the_default_schedule_runs_every_epoch_and_keeps_the_best(tmp_path, monkeypatch):
    """The authors' configuration has no early stop: all epochs run, the best one is the checkpoint."""
    scores = iter([50.0, 60.0, 40.0, 45.0, 44.0])
    monkeypatch.setattr(train, "evaluate", lambda *a, **k: next(scores, 1.0))
    code, out = run(tmp_path, "--epochs", "5", "--decay-after", "2")
    _, _, meta, _ = lm.load_checkpoint(out)
    assert [h["valid_ppl"] for h in meta["train"]["history"]] == [50.0, 60.0, 40.0, 45.0, 44.0]
    assert meta["train"]["best_valid_ppl"] == 40.0 and meta["train"]["finished"]


def test_learning_rate_schedule():
    args = train.parse_args([])
    rates = [train.learning_rate(args, epoch) for epoch in range(9)]
    assert rates[:6] == [1.0] * 6
    np.testing.assert_allclose(rates[6:], [0.8, 0.64, 0.512])


def test_sgd_step_follows_the_papers_cost_summed_over_steps():
    """Gradient of sum_t (mean over B) = T x gradient of the per-token mean; then clipped."""
    params = {"a": np.zeros(2), "embedding": np.zeros(2)}
    small = {"a": np.array([0.01, 0.0]), "embedding": np.array([1.0, 1.0])}
    norm = train.sgd_step(params, small, ["a"], lr=1.0, num_steps=50, max_norm=5.0)
    assert np.isclose(norm, 0.5)                          # 50 x 0.01, below the clip
    np.testing.assert_allclose(params["a"], [-0.5, 0.0])
    np.testing.assert_array_equal(params["embedding"], [0.0, 0.0])   # not trainable: frozen
    norm = train.sgd_step(params, {"a": np.array([0.0, 1.0])}, ["a"], lr=0.5, num_steps=50,
                          max_norm=5.0)
    assert np.isclose(norm, 50.0)
    np.testing.assert_allclose(params["a"], [-0.5, -2.5])           # lr x clipped norm 5


def test_gradient_clipping_scales_to_the_max_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[0.0, 4.0]])}
    assert train.clip_by_global_norm(grads, 1.0) == 5.0
    np.testing.assert_allclose(grads["a"], [0.6, 0.0])
    np.testing.assert_allclose(grads["b"], [[0.0, 0.8]])
