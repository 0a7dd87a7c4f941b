"""One sentence's memory (analyze.py --sentence): exact per-position gradients, the picture, bad input."""
import json

import matplotlib.pyplot
import numpy as np
import pytest

import analyze
import lstm_memory
import train
from conftest import DEVICE, SMALL_LM_ARGS, numerical_gradient
from tool import analysis, sentences


def test_per_position_gradients_equal_finite_differences():
    """G[t, s] = dstate_t/dx_s for every t and s <= t, through the code analyze.py runs."""
    rng = np.random.default_rng(4)
    V, E, H, n = 6, 3, 4, 5
    params = lstm_memory.init_params(V, E, H, seed=4, scale=0.7, dtype=np.float64)
    params["b"] += rng.normal(0, 0.5, 4 * H)                       # non-zero biases
    ids, eos = list(rng.integers(0, V - 1, n)), V - 1
    G = sentences.sentence_gradients(params, ids, eos)

    def states(X):                                                 # (n, 2, H): c_t, h_t per word
        h = c = np.zeros((1, H))
        h, c, _ = lstm_memory.lstm_step_forward(params["embedding"][[eos]], h, c, params["W_x"],
                                                params["W_h"], params["b"])
        out = []
        for t in range(n):
            h, c, _ = lstm_memory.lstm_step_forward(X[t][None], h, c, params["W_x"], params["W_h"],
                                                    params["b"])
            out.append([c[0], h[0]])
        return np.array(out)

    X = params["embedding"][ids].copy()                            # (n, E)
    numeric = numerical_gradient(states, X)                        # (n, 2, H, n, E)
    for t in range(n):
        for s in range(n):
            for i, state in enumerate("ch"):
                expected = numeric[t, i, :, s] if s <= t else np.zeros((H, E))
                np.testing.assert_allclose(G[state][t, s], expected, rtol=1e-6, atol=1e-8)


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("sentence") / "joint.npz")
    assert train.main([*SMALL_LM_ARGS, "--epochs", "2", "--out", path]) == 0
    return path


def sentence(lm, out_dir, *extra):
    return analyze.main(["--device", DEVICE, "--checkpoints", lm, "--out-dir", str(out_dir),
                         "--no-progress", *extra])


def test_the_picture_has_a_row_and_a_column_per_word_and_marks_unknown_words(lm, tmp_path,
                                                                             monkeypatch):
    figures = []
    monkeypatch.setattr(matplotlib.pyplot, "close", figures.append)      # keep the figure
    words = "the cats near the zebra see".split()
    assert sentence(lm, tmp_path, "--sentence", " ".join(words), "--property", "sg-pl",
                    "--state", "both") == 0
    ax = figures[0].axes[0]
    expected = ["the", "cats", "near", "the", "zebra*", "see"]       # zebra: not in the vocabulary
    assert [label.get_text() for label in ax.get_xticklabels()] == expected
    assert [label.get_text() for label in ax.get_yticklabels()] == expected
    assert len(figures[0].axes) == 2 * 2 * 2                        # (c, h) x (sigma_1, m), colour bars
    lm_result = json.loads((tmp_path / "results.json").read_text())["sentences"][0]["lms"]["joint"]
    assert lm_result["unknown"] == [False] * 4 + [True, False]
    sigma1 = np.array(lm_result["sigma1_c"], dtype=float)           # null above the diagonal
    assert sigma1.shape == (6, 6) and np.isnan(sigma1[np.triu_indices(6, 1)]).all()
    assert (sigma1[np.tril_indices(6)] > 0).all()
    m = np.array(lm_result["m_h"], dtype=float)[np.tril_indices(6)]
    assert ((0 <= m) & (m <= 1 + 1e-9)).all()
    assert (tmp_path / "sentence_1.png").exists() and (tmp_path / "sentence_1.pdf").exists()
    rows = (tmp_path / "sentence_1.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 21 and "zebra*" in rows[-2]          # 21 cells (s <= t) per state
    assert not (tmp_path / "table2.md").exists() and not (tmp_path / "figure1.png").exists()


@pytest.mark.parametrize("extra, message", [
    (["--sentence", "   "], "sentence 1 is empty"),
    (["--sentence", " ".join(["cats"] * 41)], "has 41 words; at most 40"),
    (["--sentences", "BINARY"], "is a binary file"),
    (["--sentence", "the cats sleep", "--property", "tense"], "have no property of that name"),
])
def test_bad_sentences_are_one_sentence_before_any_work(lm, tmp_path, capsys, monkeypatch, extra,
                                                        message):
    binary = tmp_path / "sentences.txt"
    binary.write_bytes(b"the cats\x00 sleep\n")
    extra = [str(binary) if e == "BINARY" else e for e in extra]
    if "--property" not in extra:                       # refused before the LMs are even read
        monkeypatch.setattr(analysis, "load_models", lambda *a: pytest.fail("work was done"))
    assert sentence(lm, tmp_path / "out", *extra) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_whiten_does_not_apply_to_a_sentence(capsys):
    with pytest.raises(SystemExit) as usage:
        analyze.parse_args(["--sentence", "the cats see", "--whiten"])
    assert usage.value.code == 2 and "--whiten" in capsys.readouterr().err


def test_an_out_dir_holds_one_kind_of_run(lm, tmp_path, capsys):
    assert sentence(lm, tmp_path, "--sentence", "the cats see") == 0
    assert sentence(lm, tmp_path, "--max-delay", "2", "--no-table2") == 1     # the averages
    assert "holds a --sentence picture" in capsys.readouterr().err
    assert sentence(lm, tmp_path / "averages", "--max-delay", "2", "--no-table2") == 0
    assert sentence(lm, tmp_path / "averages", "--sentence", "the cats see") == 1
    assert "holds an analysis of the averages" in capsys.readouterr().err
