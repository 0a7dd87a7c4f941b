"""analyze.py end to end on two small LMs of the generated corpus, its errors, and Table 2's classifier."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import analyze
import corpus as corpora
import lstm_memory as lm
import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--device", "cpu", "--corpus", "generated", "--embedding-size", "8", "--hidden-size", "16", "--batch-size",
         "4", "--num-steps", "10", "--no-progress", "--cbow-min-count", "1", "--epochs", "3"]

PAPER_CLASSES = ["pronouns", "nouns", "verbs", "adjectives", "adverbs", "conj./prep."]  # Table 1


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lms")
    paths = []
    for kind in ("joint", "cbow"):
        path = str(folder / f"{kind}.npz")
        assert train.main([*SMALL, "--embeddings", kind, "--out", path]) == 0
        paths.append(path)
    return paths


def analyse(checkpoints, out_dir, *extra):
    return analyze.main(["--device", "cpu", "--checkpoints", *checkpoints, "--out-dir", str(out_dir), "--max-delay",
                         "6", "--no-progress", "--classifier-seeds", "1", *extra])


def test_analysis_writes_every_result(checkpoints, tmp_path):
    assert analyse(checkpoints, tmp_path) == 0
    for stem in ("figure1", "figure2", "response", "frequency"):
        for ext in ("png", "pdf"):
            assert os.path.getsize(tmp_path / f"{stem}.{ext}") > 1000
    for stem in ("table1", "table2"):
        assert (tmp_path / f"{stem}.md").read_text().count("\n") >= 8
        assert (tmp_path / f"{stem}.csv").exists()
    results = json.loads((tmp_path / "results.json").read_text())
    assert [m["checkpoint"] for m in results["models"]] == ["joint", "cbow"]
    for model in results["models"]:
        for state in "ch":
            spectrum = model["spectrum"][state]
            assert len(spectrum["sigma1"]) == 7
            assert all(0 < s1 <= total for s1, total in zip(spectrum["sigma1"], spectrum["sum"]))
        assert all(row["count"] > 0 and row["sigma1"] > 0 for row in model["table1"]["c"].values())
        assert list(model["table1"]["c"]) == PAPER_CLASSES
        for prop in ("sg-pl", "common-proper"):
            for suffix in ("", "_class"):
                curves = model["figure2"]["c"][prop]
                assert all(0 <= v <= 1 + 1e-9 for v in curves["m" + suffix])
                assert all(0 <= v <= 1 + 1e-9 for v in curves["cos_H5" + suffix])
                np.testing.assert_allclose(curves["r_abs" + suffix],       # r_abs = r |mu_a - mu_b|
                                           np.multiply(curves["r" + suffix], curves["difference_norm"]))
        assert -1 <= model["property_cosines"]["sg-pl / common-proper"] <= 1
        assert sum(b["count"] for b in model["frequency"]["c"].values()) > 0
    assert set(results["table2"]) == {"all", "nouns", "N-V-Adj-Adv-Pro", "N-V", "N-Adj", "V-Adv",
                                      "sg-pl", "common-proper"}


def test_results_follow_the_sums_of_the_method(checkpoints, tmp_path):
    """Figure 1's sigma_1 is the SVD of the sweep's average (plumbing: the sweep itself is tested
    against brute force in test_state_gradients), and Table 1 counts follow the gold tags."""
    assert analyse(checkpoints[:1], tmp_path, "--max-tokens", "400", "--batch-size", "4") == 0
    results = json.loads((tmp_path / "results.json").read_text())
    params, _, meta, _ = lm.load_checkpoint(checkpoints[0])
    data = corpora.load_corpus("generated")
    streams = corpora.batchify(data.ids["valid"][:400], 4)
    sums = lm.sweep_state_gradients({k: v.astype(np.float32) for k, v in params.items()},
                                    streams, {}, {}, K=6)
    expected = lm.singular_values(sums.mean("all", "c")[0])[:, 0]
    np.testing.assert_allclose(results["models"][0]["spectrum"]["c"]["sigma1"], expected, rtol=1e-6)
    tags = corpora.batchify(data.tags["valid"][:400], 4)                 # (4, 100), like the ids
    scheme = corpora.builtin_scheme("brown")
    for name, row in results["models"][0]["table1"]["c"].items():
        expected_count = sum(scheme.pos_index(t) == list(scheme.pos).index(name) for t in tags.ravel())
        assert row["count"] == expected_count, name
    bins = results["models"][0]["frequency"]["c"]      # one bin: fewer than 100 words besides <unk>
    assert list(bins) == [f"rank 1-{len(data.vocab) - 1}"]
    assert bins[f"rank 1-{len(data.vocab) - 1}"]["count"] == sum(w not in (corpora.EOS, corpora.UNK)
                                             for w in np.array(data.vocab)[streams.ravel()])


def test_table2_word_classes_follow_majority_tags():
    data = corpora.load_corpus("generated")
    scheme = corpora.builtin_scheme(data.scheme)
    classes = analyze.word_classes(data, scheme)
    tasks = analyze.table2_tasks(scheme, list(scheme.properties))
    index = data.word_to_id
    ids, labels = analyze.task_dataset(classes, tasks["sg-pl"])
    by_word = dict(zip((data.vocab[i] for i in ids), labels))
    assert by_word["cats"] == "pl" and by_word["cat"] == "sg" and by_word["john"] == "sg"
    assert "sees" not in by_word and "the" not in by_word
    ids, labels = analyze.task_dataset(classes, tasks["N-V"])
    assert dict(zip(ids, labels))[index["sees"]] == "verbs"
    ids, labels = analyze.task_dataset(classes, tasks["all"], min_words=5)
    assert set(labels) == {"NN", "NNS", "NP", "JJ", "VBZ", "VBP"}      # tags of >= 5 word types


def test_whitened_analysis_runs(checkpoints, tmp_path):
    assert analyse(checkpoints, tmp_path, "--whiten", "--state", "both", "--average", "class") == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert all(m["whitened"] for m in results["models"])
    assert all(set(m["table1"]) == set(m["figure2"]) == {"c", "h"} for m in results["models"])
    assert (tmp_path / "table1.md").read_text().splitlines()[0].count("(h)") == 2


def test_lms_of_different_sizes_compare_in_one_whitened_run(checkpoints, tmp_path):
    small = str(tmp_path / "small.npz")
    sizes = [*SMALL, "--hidden-size", "8", "--embeddings", "joint", "--out", small]
    assert train.main(sizes) == 0
    assert analyse([checkpoints[0], small], tmp_path, "--whiten", "--state", "both") == 0
    models = json.loads((tmp_path / "results.json").read_text())["models"]
    assert [m["hidden_size"] for m in models] == [16, 8]
    assert all(len(m["spectrum"]["h"]["sigma1"]) == 7 for m in models)


@pytest.mark.parametrize("extra,message", [
    (["--top-n", "9"], "larger than the embedding size"),
    (["--max-delay", "200", "--max-tokens", "400"], "larger than the text"),
    (["--max-tokens", "24", "--batch-size", "1", "--max-delay", "2"], "no word of class"),
])
def test_impossible_requests_are_one_clear_error(checkpoints, tmp_path, capsys, extra, message):
    assert analyse(checkpoints, tmp_path, *extra) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_foreign_and_mismatched_checkpoints_are_refused(checkpoints, tmp_path, capsys):
    params, vocab, meta, extra = lm.load_checkpoint(checkpoints[0])
    vocab[0], vocab[1] = vocab[1], vocab[0]
    mismatched = str(tmp_path / "mismatched.npz")
    lm.save_checkpoint(mismatched, params, vocab, meta, extra)
    assert analyse([mismatched], tmp_path) == 1
    assert "does not match the corpus" in capsys.readouterr().err
    assert analyse([str(tmp_path / "missing.npz")], tmp_path) == 1
    assert "does not exist" in capsys.readouterr().err


def test_classifier_recovers_a_planted_linear_labelling():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    y = np.where(X @ rng.normal(size=6) > 0.3, "a", "b")
    accuracy, setting, sizes = analyze.best_validation_accuracy(X, y, seeds=1)
    assert accuracy >= 0.95 and sizes == (320, 80)
    shuffled, _, _ = analyze.best_validation_accuracy(X, rng.permutation(y), seeds=1)
    assert shuffled < 0.8                                  # no signal, no accuracy


def test_help_lists_the_options():
    out = subprocess.run([sys.executable, "analyze.py", "--help"], cwd=ROOT, text=True,
                         capture_output=True, check=True).stdout
    for option in ("--checkpoints", "--split", "--max-delay", "--state", "--max-tokens",
                   "--out-dir", "--device", "--whiten", "--average", "--classes", "--property",
                   "--frequency-bins"):
        assert option in out


@pytest.mark.parametrize("argv", [["--frequency-bins", "1000", "100"], ["--frequency-bins", "0"],
                                  ["--property", "Number=Sing"], ["--property", "a:b:c"],
                                  ["--average", "words"]])
def test_impossible_options_stop_at_the_command_line(argv, capsys):
    with pytest.raises(SystemExit):
        analyze.parse_args(argv)
    assert "error:" in capsys.readouterr().err
