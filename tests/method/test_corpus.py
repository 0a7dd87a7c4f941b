"""Corpus reading, splits, tags and classes (the Brown tests skip when the corpus is absent)."""
import collections
import sys

import numpy as np
import pytest

import corpus
from tool import corpora, own_text
from conftest import needs_brown

PAPER_CLASSES = ["pronouns", "nouns", "verbs", "adjectives", "adverbs", "conj./prep."]  # Table 1


def test_split_rule_puts_every_genre_in_every_split():
    assert [corpus.split_of(i) for i in range(12)] == \
        ["train"] * 4 + ["valid", "test"] + ["train"] * 4 + ["train", "train"]
    for n_docs in (6, 9, 29, 80):                          # Brown's smallest genre has 6 documents
        assert {corpus.split_of(i) for i in range(n_docs)} == set(corpus.SPLITS)


def test_generated_corpus_is_deterministic_and_aligned():
    a, b = corpora.load_corpus("generated", seed=1), corpora.load_corpus("generated", seed=1)
    assert a.words["train"][:50] == b.words["train"][:50]
    assert a.words["train"] != corpora.load_corpus("generated", seed=2).words["train"]
    for split in corpus.SPLITS:
        assert len(a.words[split]) == len(a.tags[split]) == len(a.ids[split]) > 0
    eos = a.tags["train"] == corpus.EOS
    assert np.all(np.asarray(a.words["train"])[eos] == corpus.EOS)


def test_vocabulary_keeps_the_most_frequent_words_plus_unk():
    vocab = corpus.build_vocab("b a c a b a d".split(), vocab_size=2)
    assert vocab == ["a", "b", corpus.UNK]
    assert corpus.build_vocab("y x".split(), 5) == ["x", "y", corpus.UNK]   # ties alphabetical
    data = corpora.load_corpus("generated", vocab_size=10)
    assert len(data.vocab) == 11 and (data.ids["valid"] == 10).any()


BROWN_AS_PTB = {  # Brown tag -> its class, as the paper's PTB classes take the word (None: in no class)
    "PP$": "pronouns", "PP$$": "pronouns", "PPL": "pronouns", "PPLS": "pronouns", "PPO": "pronouns",
    "PPS": "pronouns", "PPSS": "pronouns", "PPS+BEZ": None,
    "NN": "nouns", "NNS": "nouns", "NP": "nouns", "NPS": "nouns", "NR": "nouns", "NRS": "nouns",
    "NN$": "nouns", "NNS$": "nouns", "NP$": "nouns", "NPS$": "nouns", "PN": "nouns", "PN$": "nouns",
    "VB": "verbs", "VBD": "verbs", "VBG": "verbs", "VBN": "verbs", "VBZ": "verbs", "BE": "verbs",
    "BEDZ": "verbs", "BEDZ*": None, "DOD*": None, "HVZ": "verbs", "MD": None,
    "JJ": "adjectives", "JJR": "adjectives", "JJS": "adjectives", "JJT": "adjectives",
    "AP": "adjectives", "OD": "adjectives",
    "RB": "adverbs", "RBR": "adverbs", "RBT": "adverbs", "RN": "adverbs", "QL": "adverbs",
    "QLP": "adverbs", "*": "adverbs",
    "CC": "conj./prep.", "CS": "conj./prep.", "IN": "conj./prep.",
    "TO": None, "AT": None, "CD": None, "WDT": None, "WRB": None, "RP": None, "FW-NN": None, "UH": None,
}


@pytest.mark.parametrize("tag,expected", BROWN_AS_PTB.items())
def test_brown_tags_fall_in_the_classes_of_the_paper_tagset(tag, expected):
    scheme = corpus.builtin_scheme("brown")
    index = scheme.pos_index(tag)
    assert list(scheme.pos) == PAPER_CLASSES
    assert (None if index < 0 else PAPER_CLASSES[index]) == expected


@pytest.mark.parametrize("tag,sides", [
    ("NN", {"sg", "common"}), ("NR$", {"sg", "common"}), ("NP$", {"sg", "proper"}),
    ("NRS", {"pl", "common"}), ("NPS$", {"pl", "proper"}), ("NNS$", {"pl", "common"}),
    ("PN", {"sg", "common"}), ("PPS", set()), ("*", set()),
])
def test_brown_noun_properties(tag, sides):
    scheme = corpus.builtin_scheme("brown")
    assert {name for name in ("sg", "pl", "common", "proper") if scheme.classes[name].matches(tag)} == sides


PTB_NOUN_OF_SIDES = {("sg", "common"): "NN", ("pl", "common"): "NNS", ("sg", "proper"): "NNP",
                     ("pl", "proper"): "NNPS"}


@pytest.mark.parametrize("tag", [t for t, c in BROWN_AS_PTB.items() if c == "nouns"])
def test_table2_reads_each_brown_noun_tag_as_the_ptb_tag_of_its_number_and_type(tag):
    scheme = corpus.builtin_scheme("brown")
    sides = tuple(next(c.name for c in scheme.properties[p] if c.matches(tag))
                  for p in ("sg-pl", "common-proper"))
    assert corpus.PTB_NOUN_TAG.get(tag, tag) == PTB_NOUN_OF_SIDES[sides]


@pytest.mark.parametrize("tag,corpus_name,expected", [
    ("PRP", "treebank", "pronouns"), ("PRP$", "treebank", "pronouns"), ("NNPS", "treebank", "nouns"),
    ("VBZ", "treebank", "verbs"), ("MD", "treebank", None), ("RBS", "treebank", "adverbs"),
    ("WRB", "treebank", None), ("IN", "treebank", "conj./prep."), ("TO", "treebank", None),
    ("DT", "treebank", None), ("PRON", "upos", "pronouns"), ("AUX", "upos", "verbs"),
    ("ADP", "upos", "conj./prep."), ("DET", "upos", None),
])
def test_built_in_pos_classes(tag, corpus_name, expected):
    scheme = corpus.builtin_scheme(corpus_name)
    index = scheme.pos_index(tag)
    assert list(scheme.pos) == PAPER_CLASSES
    assert (None if index < 0 else PAPER_CLASSES[index]) == expected


def test_a_bracketed_star_is_a_literal_star():
    """``[*]`` names Brown's tag "*" only, as in shell patterns; ``!*[*]`` drops the negated verbs."""
    scheme = corpus.parse_scheme("pos adverbs = RB* QL [*]\npos verbs = DO* BE* !*[*]\n", "mine.txt")
    adverbs, verbs = scheme.pos["adverbs"], scheme.pos["verbs"]
    assert adverbs.matches("*") and adverbs.matches("RB$") and adverbs.matches("QL")
    assert not any(adverbs.matches(tag) for tag in ("NN", "VB", "**", "*x", "QLP", "AT"))
    assert verbs.matches("DOD") and verbs.matches("BEDZ")
    assert not any(verbs.matches(tag) for tag in ("DOD*", "BEDZ*", "BEM*", "*"))
    corpus.check_tags_exist(scheme, ["RB", "QL", "*", "DOD", "BE"])
    with pytest.raises(corpus.CorpusError, match=r"mine.txt:1: tag '\[\*\]' of class 'adverbs' is not"):
        corpus.check_tags_exist(scheme, ["RB", "QL", "DOD", "BE", "NN"])


def test_brown_tags_are_read_as_the_treebank_tags_them():
    assert corpus.normalize_tag("cat", "NN-HL", "brown") == "NN"
    assert corpus.normalize_tag("john", "NP-TL-HL", "brown") == "NP"
    assert corpus.normalize_tag("cat", "NN-TL", "treebank") == "NN-TL"
    assert corpus.normalize_tag("to", "IN", "brown") == "TO"               # the preposition
    assert corpus.normalize_tag("To", "IN-TL", "brown") == "TO"
    assert corpus.normalize_tag("to", "TO", "brown") == "TO"               # the infinitive marker
    assert corpus.normalize_tag("into", "IN", "brown") == "IN"
    assert corpus.normalize_tag("to", "IN", "generated") == "IN"           # Brown only
    assert corpus.normalize_tag("to", "IN", "treebank") == "IN"


@pytest.mark.parametrize("word, brown_tag, ptb_tag", [
    # a common noun in a title is part of a name: the proper noun tag of its number
    ("Department", "NN-TL", "NNP"), ("States", "NNS-TL", "NNPS"), ("City's", "NN$-TL", "NNP"),
    ("Churches'", "NNS$-TL", "NNPS"), ("West", "NR-TL", "NNP"), ("Avenues", "NRS-TL", "NNPS"),
    ("County", "NN-TL-HL", "NNP"), ("county", "NN-HL", "NN"), ("county", "NN", "NN"),
    # weekdays are proper nouns in PTB, any case and number; other NR words stay common
    ("Sunday", "NR", "NNP"), ("saturday", "NR", "NNP"), ("Mondays", "NRS", "NNPS"),
    ("Friday's", "NR$", "NNP"), ("home", "NR", "NN"), ("tomorrow", "NR", "NN"), ("west", "NR", "NN"),
    ("Sundays", "NNS", "NNS"),                                   # not an NR tag: as tagged
    # tags that are not common nouns keep their tag in titles
    ("John", "NP-TL", "NNP"), ("Great", "JJ-TL", "JJ"), ("of", "IN-TL", "IN"), ("Sunday", "NP", "NNP"),
])
def test_brown_nouns_in_titles_and_weekdays_are_proper_as_in_ptb(word, brown_tag, ptb_tag):
    tag = corpus.normalize_tag(word, brown_tag, "brown")
    assert corpus.PTB_NOUN_TAG.get(tag, tag) == ptb_tag
    assert corpus.normalize_tag(word, brown_tag, "treebank") == brown_tag


def test_batchify_and_majority_tags():
    streams = corpus.batchify(np.arange(23), 4)
    assert streams.shape == (4, 5) and list(streams[1]) == [5, 6, 7, 8, 9]
    with pytest.raises(ValueError):
        corpus.batchify(np.arange(5), 4)
    data = corpora.load_corpus("generated")
    analyses = corpus.majority_analyses(data)
    index = data.word_to_id
    assert analyses[index["cats"]] == ("NNS", "_") and analyses[index["sees"]] == ("VBZ", "_")
    assert analyses[index[corpus.UNK]] is None and analyses[index[corpus.EOS]] is None


def test_missing_corpus_says_what_to_do(monkeypatch, tmp_path, capsys):
    import nltk

    def offline(name, **kwargs):                   # what NLTK's downloader prints when offline
        print(f"[nltk_data] Error loading {name}: <urlopen error>",
              file=kwargs.get("print_error_to") or sys.stderr)
        return False

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    monkeypatch.setattr(nltk, "download", offline)
    with pytest.raises(corpus.CorpusError, match="python -m nltk.downloader brown"):
        corpora.load_corpus("brown")
    assert "[nltk_data]" not in capsys.readouterr().err            # only the project's sentence
    with pytest.raises(corpus.CorpusError, match="no corpus named 'nonsense'"):
        corpora.load_corpus("nonsense")


@needs_brown
def test_brown_split_sizes_genres_and_tags():
    data = corpora.load_corpus("brown")
    sizes = {s: len(data.ids[s]) for s in corpus.SPLITS}
    total = sum(sizes.values())
    assert 0.75 < sizes["train"] / total < 0.85 and 0.08 < sizes["valid"] / total < 0.12
    assert len(data.vocab) == 10001 and data.vocab[0] == "the" and data.vocab[-1] == corpus.UNK
    assert data.words["train"][:3] == ["dan", "morgan", "told"]         # cn01, adventure
    assert list(data.tags["train"][:3]) == ["NP", "NP", "VBD"]
    assert not any(t.endswith(("-TL", "-HL", "-NC")) for t in set(data.tags["train"]))
    classes = collections.Counter(corpus.builtin_scheme("brown").pos_labels(data.tags["valid"],
                                                                              data.feats["valid"]))
    assert all(classes[i] > 1000 for i in range(len(PAPER_CLASSES)))
    assert own_text.guess_scheme(data.tags["train"]) == "brown"
    scheme, members = corpus.builtin_scheme("brown"), collections.defaultdict(set)
    for tag in set().union(*(data.tags[split] for split in corpus.SPLITS)):    # every tag Brown has
        members[scheme.pos_index(tag)].add(tag)
    assert members[3] == {"JJ", "JJR", "JJS", "JJT", "JJ$", "AP", "OD"}           # adjectives
    assert members[4] == {"RB", "RBR", "RBT", "RB$", "RN", "QL", "QLP", "*"}      # adverbs
    assert not any("+" in tag or "FW" in tag or tag[1:].endswith("*") for i in range(6) for tag in members[i])
    assert {"MD", "MD*", "DOD*", "TO", "PPS+BEZ", "WRB", "RP"} <= members[-1]
    to = np.asarray(data.words["train"]) == "to"
    to_tags = collections.Counter(data.tags["train"][to])                # IN 11,158 and TO 14,995 in all
    assert to_tags["TO"] > 20000 and "IN" not in to_tags                # the preposition is TO too


@needs_brown
def test_treebank_drops_traces():
    try:
        data = corpora.load_corpus("treebank")
    except corpus.CorpusError:
        pytest.skip("the Treebank sample is not installed")
    assert "-NONE-" not in set(data.tags["train"])
    assert own_text.guess_scheme(data.tags["train"]) == "treebank"
