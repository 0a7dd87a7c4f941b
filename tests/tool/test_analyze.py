"""analyze.py end to end on two small LMs of the generated corpus, its errors, and Table 2's classifier."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import analyze
from tool.checkpoints import load_checkpoint, save_checkpoint
import corpus
import lstm_memory
import train
from tool import analysis, corpora
from conftest import DEVICE, SMALL_LM_ARGS, train_small_lms
from test_cli import markdown_rows

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PAPER_CLASSES = ["pronouns", "nouns", "verbs", "adjectives", "adverbs", "conj./prep."]  # Table 1


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return train_small_lms(tmp_path_factory.mktemp("lms"),
                           [(kind, ["--epochs", "3", "--embeddings", kind]) for kind in ("joint", "cbow")])


def analyse(checkpoints, out_dir, *extra):
    return analyze.main(["--device", DEVICE, "--checkpoints", *checkpoints, "--out-dir", str(out_dir),
                         "--sweep-cache", str(out_dir / "sweeps"), "--max-delay", "6", "--no-progress",
                         "--classifier-seeds", "1", *extra])


def test_analysis_writes_every_result(checkpoints, tmp_path):
    assert analyse(checkpoints, tmp_path) == 0
    for stem in ("figure1", "figure2", "response", "frequency"):
        for ext in ("png", "pdf"):
            assert os.path.getsize(tmp_path / f"{stem}.{ext}") > 1000
    for stem in ("table1", "table2", "table1_bands"):
        rows = markdown_rows(tmp_path / f"{stem}.md")
        assert len(rows) >= 8 and len({len(row) for row in rows}) == 1, stem   # renders as a table
        assert (tmp_path / f"{stem}.csv").exists()
    results = json.loads((tmp_path / "results.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"{c} in results.json"))
    assert [m["checkpoint"] for m in results["models"]] == ["joint", "cbow"]
    for model in results["models"]:
        for state in "ch":
            spectrum = model["spectrum"][state]
            assert len(spectrum["sigma1"]) == 7
            assert all(0 < s1 <= total for s1, total in zip(spectrum["sigma1"], spectrum["sum"]))
        table1 = model["table1"]["c"]
        assert list(table1) == [*PAPER_CLASSES, corpus.UNK]
        assert all(table1[c]["count"] > 0 and table1[c]["sigma1"] > 0 for c in PAPER_CLASSES)
        assert np.isclose(sum(table1[c]["normalised"] for c in PAPER_CLASSES), 1.0)
        assert table1[corpus.UNK]["normalised"] is None            # outside the normalisation
        for prop in ("sg-pl", "common-proper"):
            curves = model["figure2"]["c"][prop]
            assert all(0 <= v <= 1 + 1e-9 for v in curves["m"])
            assert all(0 <= v <= 1 + 1e-9 for v in curves["cos_Hn"])
            np.testing.assert_allclose(curves["r_abs"],                   # r_abs = r |mu_a - mu_b|
                                       np.multiply(curves["r"], model["properties"][prop]["difference_norm"]))
        assert model["figure2_class"] == {}                               # only with --average class
        assert -1 <= model["property_cosines"]["sg-pl / common-proper"] <= 1
        assert sum(b["count"] for b in model["frequency"]["c"].values()) > 0
    assert set(results["table2"]) == {"all", "nouns", "N-V-Adj-Adv-Pro", "N-V", "N-Adj", "V-Adv",
                                      "sg-pl", "common-proper"}
    for row in results["table2"].values():
        for entry in row.values():
            assert 0 <= entry["honest"] <= entry["paper"] <= 1       # the paper's is the best of all


def test_results_follow_the_sums_of_the_method(checkpoints, tmp_path):
    """Figure 1's sigma_1 is the SVD of the sweep's average (plumbing: the sweep itself is tested
    against brute force in test_state_gradients), and Table 1 counts follow the gold tags."""
    assert analyse(checkpoints[:1], tmp_path, "--max-tokens", "400", "--batch-size", "4") == 0
    results = json.loads((tmp_path / "results.json").read_text())
    params, _, meta, _ = load_checkpoint(checkpoints[0])
    data = corpora.load_corpus("generated")
    streams = corpus.batchify(data.ids["valid"][:400], 4)
    sums = lstm_memory.sweep_state_gradients({k: v.astype(np.float32) for k, v in params.items()},
                                    streams, {}, {}, K=6)
    expected = lstm_memory.singular_values(sums.G_bar("c"))[:, 0]
    np.testing.assert_allclose(results["models"][0]["spectrum"]["c"]["sigma1"], expected, rtol=1e-6)
    tags = corpus.batchify(data.tags["valid"][:400], 4)                 # (4, 100), like the ids
    scheme = corpus.builtin_scheme("brown")
    for name in scheme.pos:
        expected_count = sum(scheme.pos_index(t) == list(scheme.pos).index(name) for t in tags.ravel())
        assert results["models"][0]["table1"]["c"][name]["count"] == expected_count, name
    bins = results["models"][0]["frequency"]["c"]      # one bin: fewer than 100 words besides <unk>
    assert list(bins) == [f"rank 1-{len(data.vocab) - 1}"]
    assert bins[f"rank 1-{len(data.vocab) - 1}"]["count"] == sum(w not in (corpus.EOS, corpus.UNK)
                                             for w in np.array(data.vocab)[streams.ravel()])


def test_table2_word_classes_follow_majority_tags():
    data = corpora.load_corpus("generated")
    scheme = corpus.builtin_scheme(data.scheme)
    classes = corpus.word_classes(data, scheme)
    tasks = analysis.table2_tasks(scheme, list(scheme.properties))
    index = data.word_to_id
    ids, labels = analysis.task_dataset(classes, tasks["sg-pl"])
    by_word = dict(zip((data.vocab[i] for i in ids), labels))
    assert by_word["cats"] == "pl" and by_word["cat"] == "sg" and by_word["john"] == "sg"
    assert "sees" not in by_word and "the" not in by_word
    ids, labels = analysis.task_dataset(classes, tasks["N-V"])
    assert dict(zip(ids, labels))[index["sees"]] == "verbs"
    ids, labels = analysis.task_dataset(classes, tasks["all"], min_words=5)
    assert set(labels) == {"NN", "NNS", "NP", "JJ", "VBZ", "VBP"}      # tags of >= 5 word types
    ids, labels = analysis.task_dataset(classes, tasks["nouns"], min_words=7)
    assert set(labels) == {"NN", "NNS"}                 # NP: 6 word types, too few for the row
    ids, labels = analysis.task_dataset(classes, tasks["nouns"], min_words=5)
    assert set(labels) == {"NN", "NNS", "NNP"}          # the paper's PTB noun tags: NP is NNP


def test_whitened_analysis_runs(checkpoints, tmp_path):
    assert analyse(checkpoints, tmp_path, "--whiten", "--state", "both", "--average", "class") == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert all(m["whitened"] for m in results["models"])
    assert all(set(m["table1"]) == set(m["figure2"]) == set(m["figure2_class"]) == {"c", "h"}
               for m in results["models"])
    assert (tmp_path / "table1.md").read_text().splitlines()[0].count("(h)") == 2


def test_lms_of_different_sizes_compare_in_one_whitened_run(checkpoints, tmp_path):
    small = str(tmp_path / "small.npz")
    sizes = [*SMALL_LM_ARGS, "--epochs", "3", "--hidden-size", "8", "--out", small]
    assert train.main(sizes) == 0
    assert analyse([checkpoints[0], small], tmp_path, "--whiten", "--state", "both") == 0
    models = json.loads((tmp_path / "results.json").read_text())["models"]
    assert [m["hidden_size"] for m in models] == [16, 8]
    assert all(len(m["spectrum"]["h"]["sigma1"]) == 7 for m in models)


@pytest.mark.parametrize("extra,message", [
    (["--top-n", "9"], "larger than min(H, E) = 8"),
    (["--max-delay", "200", "--max-tokens", "400"], "larger than the text"),
])
def test_impossible_requests_are_one_clear_error(checkpoints, tmp_path, capsys, extra, message):
    assert analyse(checkpoints, tmp_path, *extra) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_class_without_words_in_the_text_is_reported_empty(checkpoints, tmp_path, capsys):
    """A short text where some classes have no word: a note, n 0 in Table 1, the rest written."""
    assert analyse(checkpoints[:1], tmp_path, "--max-tokens", "24", "--batch-size", "1",
                   "--max-delay", "2", "--no-table2") == 0
    err = capsys.readouterr().err
    assert "no word of class" in err and "its Table 1 entry is empty (n 0)" in err
    table1 = json.loads((tmp_path / "results.json").read_text())["models"][0]["table1"]["c"]
    empty = [c for c in PAPER_CLASSES if table1[c]["count"] == 0]
    assert empty and all(table1[c]["sigma1"] is None for c in empty)
    assert any(table1[c]["count"] > 0 and table1[c]["sigma1"] > 0 for c in PAPER_CLASSES)


def test_a_class_emptied_by_an_earlier_class_says_which(checkpoints, tmp_path, capsys):
    classes = tmp_path / "classes.txt"
    classes.write_text("pos nouns = N*\npos names = NP\npos verbs = VB*\n")
    assert analyse(checkpoints[:1], tmp_path, "--classes", str(classes), "--no-table2") == 0
    assert (f"{classes}:2: no word of class names in the valid text of generated: every token its "
            "tags match is in an earlier class (nouns)") in capsys.readouterr().err


def test_foreign_and_mismatched_checkpoints_are_refused(checkpoints, tmp_path, capsys):
    params, vocab, meta, extra = load_checkpoint(checkpoints[0])
    vocab[0], vocab[1] = vocab[1], vocab[0]
    mismatched = str(tmp_path / "mismatched.npz")
    save_checkpoint(mismatched, params, vocab, meta, extra)
    assert analyse([mismatched], tmp_path) == 1
    assert "does not match the corpus" in capsys.readouterr().err
    assert analyse([str(tmp_path / "missing.npz")], tmp_path) == 1
    assert "does not exist" in capsys.readouterr().err


def test_classifier_recovers_a_planted_linear_labelling():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    y = np.where(X @ rng.normal(size=6) > 0.3, "a", "b")
    scores = analyze.separability(X, y, seeds=1)
    assert scores["honest"] >= 0.95 and scores["cv"] >= 0.9 and scores["words"] == [320, 80]
    shuffled = analyze.separability(X, rng.permutation(y), seeds=1)
    assert shuffled["honest"] < 0.8 and shuffled["cv"] < 0.8      # no signal, no accuracy
    assert shuffled["paper"] >= shuffled["honest"]                # the best of the grid on its own test


@pytest.mark.parametrize("argv", [["--frequency-bins", "1000", "100"], ["--frequency-bins", "0"],
                                  ["--property", "Number=Sing"], ["--property", "a:b:c"],
                                  ["--property", "sg:sg"], ["--average", "words"],
                                  ["--batch-size", "0"], ["--classifier-seeds", "0"],
                                  ["--top-n", "0"], ["--max-delay", "-1"], ["--cv-folds", "1"]])
def test_impossible_options_stop_at_the_command_line(argv, capsys):
    with pytest.raises(SystemExit):
        analyze.parse_args(argv)
    assert "error:" in capsys.readouterr().err


# ---- <unk> positions, the sweep cache, and what is checked before the sweeps -----------------

def test_unknown_words_are_in_no_class(tmp_path, small_lm_args):
    """Nouns seen only in the validation text become <unk>: Table 1 counts exactly the noun
    positions whose word the LM knows, and <unk> gets its own row."""
    folder = tmp_path / "text"
    folder.mkdir()
    train_sent = ("he/PPS sees/VBZ the/AT big/JJ cat/NN quickly/RB and/CC a/AT dog/NN in/IN london/NP ./.\n"
                  "they/PPSS see/VBP cats/NNS ./.\n")
    valid_sent = ("he/PPS sees/VBZ the/AT big/JJ zebra/NN quickly/RB and/CC a/AT dog/NN in/IN london/NP ./.\n"
                  "they/PPSS see/VBP okapis/NNS ./.\n")
    (folder / "toy-train.txt").write_text(train_sent * 200)
    (folder / "toy-dev.txt").write_text(valid_sent * 40)
    (folder / "toy-test.txt").write_text(train_sent * 20)
    checkpoint = str(tmp_path / "lstm_memory.npz")
    options = [a for a in small_lm_args if a not in ("--corpus", "generated")]
    assert train.main([*options, "--corpus", str(folder), "--epochs", "1", "--out", checkpoint]) == 0
    assert analyse([checkpoint], tmp_path, "--no-table2", "--max-delay", "2") == 0
    table1 = json.loads((tmp_path / "results.json").read_text())["models"][0]["table1"]["c"]
    data = corpora.load_corpus(str(folder))
    n = len(data.ids["valid"]) // 20 * 20                                 # what batchify keeps
    ids, tags = data.ids["valid"][:n], data.tags["valid"][:n]
    unknown = ids == data.word_to_id[corpus.UNK]
    assert table1["nouns"]["count"] == int(np.sum(np.isin(tags, ["NN", "NNS", "NP"]) & ~unknown))
    assert table1[corpus.UNK]["count"] == int(unknown.sum()) > n // 19          # zebra, okapis


def test_a_rerun_reuses_the_sweep_and_gives_the_same_numbers(checkpoints, tmp_path, capsys):
    assert analyse(checkpoints[:1], tmp_path / "first", "--no-table2") == 0
    assert "reusing" not in capsys.readouterr().err
    shared = ["--sweep-cache", str(tmp_path / "first" / "sweeps")]
    assert analyse(checkpoints[:1], tmp_path / "second", "--no-table2", *shared) == 0
    assert "reusing the sweep" in capsys.readouterr().err
    first, second = (json.loads((tmp_path / d / "results.json").read_text())["models"]
                     for d in ("first", "second"))
    assert first == second
    assert analyse(checkpoints[:1], tmp_path / "third", "--no-table2", "--whiten", *shared) == 0
    assert "reusing the sweep" in capsys.readouterr().err                  # whitening: no new sweep


def test_table2_rows_that_cannot_be_split_are_left_out_with_a_note(checkpoints, tmp_path, capsys):
    assert analyse(checkpoints[:1], tmp_path, "--cv-folds", "40") == 0
    err = capsys.readouterr().err
    assert "note: Table 2 row sg-pl left out" in err and "Traceback" not in err
    assert "sg-pl" not in json.loads((tmp_path / "results.json").read_text())["table2"]


def test_checks_come_before_the_sweep(checkpoints, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(lstm_memory, "sweep_state_gradients", lambda *a, **k: pytest.fail("swept"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert analyse(checkpoints, tmp_path, "--out-dir", str(blocker)) == 1
    assert "--out-dir" in capsys.readouterr().err
    classes = tmp_path / "classes.txt"
    classes.write_text("pos nouns = NN NNS\nclass sg = NN\nproperty same = sg sg\n")
    assert analyse(checkpoints, tmp_path, "--classes", str(classes)) == 1
    assert "has the class 'sg' on both sides" in capsys.readouterr().err


def test_ctrl_c_keeps_finished_sweeps_and_exits_130(checkpoints, tmp_path, monkeypatch, capsys):
    real_sweep = lstm_memory.sweep_state_gradients

    def interrupted(*args, **kwargs):
        if args[4] > 0:                   # the delay-0 sweep finishes, the 0..K sweep is cut short
            raise KeyboardInterrupt
        return real_sweep(*args, **kwargs)

    monkeypatch.setattr(lstm_memory, "sweep_state_gradients", interrupted)
    assert analyse(checkpoints[:1], tmp_path, "--no-table2") == 130
    assert "interrupted" in capsys.readouterr().err
    assert len(list((tmp_path / "sweeps").glob("joint-K0-*.npz"))) == 1


def test_odd_checkpoint_names_and_the_command_line(checkpoints, tmp_path, cache_home):
    odd = tmp_path / "$x_1$.npz"
    odd.write_bytes(open(checkpoints[0], "rb").read())
    assert analyse([str(odd)], tmp_path, "--no-table2") == 0              # not read as mathtext
    assert analyze.main(["--device", DEVICE, "--checkpoints", str(odd), "--out-dir", str(tmp_path / "o"),
                         "--max-delay", "2", "--no-table2", "--no-progress"]) == 0
    # the default sweep cache is the user's cache folder ($XDG_CACHE_HOME), never beside the LM
    assert len(list((cache_home / "state-gradients" / "sweeps").glob("$x_1$-K2-*.npz"))) == 1
    assert not list(tmp_path.glob("**/*K2-*.npz")) and not (tmp_path / "o" / "sweeps").exists()
    missing = subprocess.run([sys.executable, "analyze.py", "--checkpoints", str(tmp_path / "no.npz"),
                              "--out-dir", str(tmp_path / "out")], cwd=ROOT, text=True,
                             capture_output=True)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr and missing.stderr.count("\n") == 1
    usage = subprocess.run([sys.executable, "analyze.py", "--batch-size", "0"], cwd=ROOT, text=True,
                           capture_output=True)
    assert usage.returncode == 2 and "an integer >= 1" in usage.stderr


def test_lms_of_one_corpus_name_with_other_settings_each_read_their_own_text(checkpoints, tmp_path):
    """--vocab-size 50 makes another text of the same corpus name (more <unk>): each LM's Table 1
    counts its own corpus, and the frequency bands of both vocabularies are in table1_bands."""
    small_vocab = str(tmp_path / "v50.npz")
    assert train.main([*SMALL_LM_ARGS, "--epochs", "1", "--vocab-size", "50", "--out", small_vocab]) == 0
    assert analyse([checkpoints[0], small_vocab], tmp_path, "--no-table2", "--max-tokens", "400",
                   "--batch-size", "4") == 0
    models = json.loads((tmp_path / "results.json").read_text())["models"]
    for model, vocab_size in zip(models, (10000, 50)):
        data = corpora.load_corpus("generated", vocab_size=vocab_size)
        ids, tags = data.ids["valid"][:400], data.tags["valid"][:400]
        known = ids != data.word_to_id[corpus.UNK]
        nouns = np.isin(tags, ["NN", "NNS", "NP", "NPS"]) & known
        assert model["table1"]["c"]["nouns"]["count"] == int(nouns.sum())
        assert model["table1"]["c"][corpus.UNK]["count"] == int((~known).sum())
    assert models[0]["table1"]["c"][corpus.UNK]["count"] < models[1]["table1"]["c"][corpus.UNK]["count"]
    bands = (tmp_path / "table1_bands.csv").read_text()
    assert all(f"nouns | {name}" in bands for model in models for name in model["frequency"]["c"])
    assert (tmp_path / "validation.png").stat().st_size > 1000


def test_another_stream_layout_sweeps_again(checkpoints, tmp_path, capsys):
    assert analyse(checkpoints[:1], tmp_path, "--no-table2", "--max-tokens", "400",
                   "--batch-size", "10") == 0
    capsys.readouterr()
    assert analyse(checkpoints[:1], tmp_path, "--no-table2", "--max-tokens", "400",
                   "--batch-size", "20") == 0
    assert "reusing" not in capsys.readouterr().err
    for broken in (tmp_path / "sweeps").glob("joint-K6-*.npz"):     # both layouts' 0..K sweeps
        broken.write_bytes(b"not a zip file")
    assert analyse(checkpoints[:1], tmp_path, "--no-table2", "--max-tokens", "400",
                   "--batch-size", "20") == 0
    err = capsys.readouterr().err
    assert "it cannot be read" in err and "sweeping again" in err


@pytest.mark.parametrize("name", ["all", "freq", "nouns", "N-V"])
def test_reserved_property_names_are_refused(checkpoints, tmp_path, capsys, name):
    classes = tmp_path / "classes.txt"
    classes.write_text(f"pos nouns = NN NNS\nclass sg = NN\nclass pl = NNS\nproperty {name} = sg pl\n")
    assert analyse(checkpoints[:1], tmp_path, "--classes", str(classes)) == 1
    assert "reserved" in capsys.readouterr().err


@pytest.mark.parametrize("edit, sentence", [
    (lambda meta: meta["settings"].update(vocab_size="10000"), "usable training setting vocab_size"),
    (lambda meta: meta["settings"].pop("embeddings"), "usable training setting embeddings"),
    (lambda meta: meta.update(train=[]), "training state analyze.py cannot read"),
    (lambda meta: meta["train"]["history"].append({"epoch": 9}), "training state analyze.py cannot read"),
    (lambda meta: meta["settings"].update(tag_column="foo"), "setting --tag-column 'foo', which the"),
    (lambda meta: meta["settings"].update(max_distance="abc"), "setting --max-distance 'abc', which"),
    (lambda meta: meta["settings"].update(max_distance=-3), "setting --max-distance -3, which the"),
    (lambda meta: meta["settings"].update(max_distance=10**6), "setting --max-distance 1000000, wh"),
    (lambda meta: meta["settings"].update(seed=-1), "setting --seed -1, which the command line"),
    (lambda meta: meta["settings"].update(embeddings="word2vec"), "setting --embeddings 'word2vec'"),
])
def test_foreign_metadata_is_refused_before_the_sweeps(checkpoints, tmp_path, capsys, edit, sentence):
    params, vocab, meta, extra = load_checkpoint(checkpoints[0])
    edit(meta)
    foreign = str(tmp_path / "foreign.npz")
    save_checkpoint(foreign, params, vocab, meta, extra)
    assert analyse([foreign], tmp_path) == 1
    err = capsys.readouterr().err
    assert sentence in err and "Traceback" not in err
