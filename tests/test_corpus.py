"""Corpus reading, splits, tags and classes (the Brown tests skip when the corpus is absent)."""
import collections

import numpy as np
import pytest

import corpus as corpora
from conftest import needs_brown

PAPER_CLASSES = ["pronouns", "nouns", "verbs", "adjectives", "adverbs", "conj./prep."]  # Table 1


def test_split_rule_puts_every_genre_in_every_split():
    assert [corpora.split_of(i) for i in range(12)] == \
        ["train"] * 4 + ["valid", "test"] + ["train"] * 4 + ["train", "train"]
    for n_docs in (6, 9, 29, 80):                          # Brown's smallest genre has 6 documents
        assert {corpora.split_of(i) for i in range(n_docs)} == set(corpora.SPLITS)


def test_generated_corpus_is_deterministic_and_aligned():
    a, b = corpora.load_corpus("generated", seed=1), corpora.load_corpus("generated", seed=1)
    assert a.words["train"][:50] == b.words["train"][:50]
    assert a.words["train"] != corpora.load_corpus("generated", seed=2).words["train"]
    for split in corpora.SPLITS:
        assert len(a.words[split]) == len(a.tags[split]) == len(a.ids[split]) > 0
    eos = a.tags["train"] == corpora.EOS
    assert np.all(np.asarray(a.words["train"])[eos] == corpora.EOS)


def test_vocabulary_keeps_the_most_frequent_words_plus_unk():
    vocab = corpora.build_vocab("b a c a b a d".split(), vocab_size=2)
    assert vocab == ["a", "b", corpora.UNK]
    assert corpora.build_vocab("y x".split(), 5) == ["x", "y", corpora.UNK]   # ties alphabetical
    data = corpora.load_corpus("generated", vocab_size=10)
    assert len(data.vocab) == 11 and (data.ids["valid"] == 10).any()


@pytest.mark.parametrize("tag,corpus,expected", [
    ("PPS", "brown", "pronouns"), ("PP$", "brown", "pronouns"), ("NN", "brown", "nouns"),
    ("NPS", "brown", "nouns"), ("NN$", "brown", None), ("VBD", "brown", "verbs"),
    ("BEZ", "brown", "verbs"), ("HVD", "brown", "verbs"), ("DOZ", "brown", "verbs"),
    ("JJR", "brown", "adjectives"), ("RB", "brown", "adverbs"), ("CS", "brown", "conj./prep."),
    ("IN", "brown", "conj./prep."), ("AT", "brown", None), ("PPS+BEZ", "brown", None),
    ("PRP", "treebank", "pronouns"), ("NNPS", "treebank", "nouns"), ("VBZ", "treebank", "verbs"),
    ("RBS", "treebank", "adverbs"), ("IN", "treebank", "conj./prep."), ("DT", "treebank", None),
])
def test_built_in_pos_classes(tag, corpus, expected):
    scheme = corpora.builtin_scheme(corpus)
    index = scheme.pos_index(tag)
    assert list(scheme.pos) == PAPER_CLASSES
    assert (None if index < 0 else PAPER_CLASSES[index]) == expected


def test_brown_suffixes_are_dropped():
    assert corpora.normalize_tag("NN-TL", "brown") == "NN"
    assert corpora.normalize_tag("NP-TL-HL", "brown") == "NP"
    assert corpora.normalize_tag("NN$-TL", "brown") == "NN$"
    assert corpora.normalize_tag("NN-TL", "treebank") == "NN-TL"


def test_batchify_and_majority_tags():
    streams = corpora.batchify(np.arange(23), 4)
    assert streams.shape == (4, 5) and list(streams[1]) == [5, 6, 7, 8, 9]
    with pytest.raises(ValueError):
        corpora.batchify(np.arange(5), 4)
    data = corpora.load_corpus("generated")
    analyses = corpora.majority_analyses(data)
    index = data.word_to_id
    assert analyses[index["cats"]] == ("NNS", "_") and analyses[index["sees"]] == ("VBZ", "_")
    assert analyses[index[corpora.UNK]] is None and analyses[index[corpora.EOS]] is None


def test_missing_corpus_says_what_to_do(monkeypatch, tmp_path):
    import nltk
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    monkeypatch.setattr(nltk, "download", lambda *a, **k: False)
    with pytest.raises(corpora.CorpusError, match="python -m nltk.downloader brown"):
        corpora.load_corpus("brown")
    with pytest.raises(corpora.CorpusError, match="no corpus named 'nonsense'"):
        corpora.load_corpus("nonsense")


@needs_brown
def test_brown_split_sizes_genres_and_tags():
    data = corpora.load_corpus("brown")
    sizes = {s: len(data.ids[s]) for s in corpora.SPLITS}
    total = sum(sizes.values())
    assert 0.75 < sizes["train"] / total < 0.85 and 0.08 < sizes["valid"] / total < 0.12
    assert len(data.vocab) == 10001 and data.vocab[0] == "the" and data.vocab[-1] == corpora.UNK
    assert data.words["train"][:3] == ["dan", "morgan", "told"]         # cn01, adventure
    assert list(data.tags["train"][:3]) == ["NP", "NP", "VBD"]
    assert not any(t.endswith(("-TL", "-HL", "-NC")) for t in set(data.tags["train"]))
    classes = collections.Counter(corpora.builtin_scheme("brown").pos_labels(data.tags["valid"],
                                                                              data.feats["valid"]))
    assert all(classes[i] > 1000 for i in range(len(PAPER_CLASSES)))
    assert corpora.guess_scheme(data.tags["train"]) == "brown"


@needs_brown
def test_treebank_drops_traces():
    try:
        data = corpora.load_corpus("treebank")
    except corpora.CorpusError:
        pytest.skip("the Treebank sample is not installed")
    assert "-NONE-" not in set(data.tags["train"])
    assert corpora.guess_scheme(data.tags["train"]) == "treebank"
