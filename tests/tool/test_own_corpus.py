"""The user's own text: CoNLL-U and word/TAG files, class files, feature properties, and the
errors that name the file and line. Every corpus here is written by the tests."""
import json

import numpy as np
import pytest

import analyze
import corpus
import train
from tool import corpora, languages, own_text
from conftest import DEVICE, SMALL_LM_ARGS

UPOS = {  # the generated language's Brown tags -> (UPOS, FEATS)
    "AT": ("DET", "_"), "NN": ("NOUN", "Number=Sing"), "NNS": ("NOUN", "Number=Plur"),
    "NP": ("PROPN", "Number=Sing"), "JJ": ("ADJ", "Degree=Pos"), "VBZ": ("VERB", "Number=Sing|Tense=Pres"),
    "VBP": ("VERB", "Number=Plur|Tense=Pres"), "RB": ("ADV", "_"), "IN": ("ADP", "_"),
    "PPS": ("PRON", "Number=Sing"), "PPSS": ("PRON", "Number=Plur"), ".": ("PUNCT", "_"),
}
SMALL = [*SMALL_LM_ARGS, "--epochs", "1"]          # a later --corpus PATH replaces "generated"


def write_conllu(path, docs):
    """The generated language as CoNLL-U, with comments, a multiword token and an empty node."""
    lines = []
    for d, sents in enumerate(docs):
        for s, sent in enumerate(sents):
            lines += [f"# sent_id = {d}-{s}", "# text = " + " ".join(w for w, _, _ in sent)]
            if s == 0:
                lines.append(f"1-2\t{sent[0][0]}{sent[1][0]}\t_\t_\t_\t_\t_\t_\t_\t_")   # multiword token
            for i, (word, tag, _) in enumerate(sent, 1):
                upos, feats = UPOS[tag]
                lines.append(f"{i}\t{word}\t{word}\t{upos}\t{tag}\t{feats}\t0\tdep\t_\t_")
            if s == 0:
                lines.append("1.1\tghost\t_\tNOUN\tNN\t_\t_\t_\t_\t_")                     # empty node
            lines.append("")
    path.write_text("\n".join(lines) + "\n")


def write_word_tag(path, docs):
    path.write_text("".join(" ".join(f"{w}/{t}" for w, t, _ in sent) + "\n" for sents in docs for sent in sents))


@pytest.fixture(scope="module")
def conllu_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ud")
    docs = languages.generate_documents(n_docs=20, sentences_per_doc=40)
    write_conllu(folder / "toy-ud-train.conllu", docs[:16])
    write_conllu(folder / "toy-ud-dev.conllu", docs[16:18])
    write_conllu(folder / "toy-ud-test.conllu", docs[18:])
    (folder / "README.md").write_text("# Universal Dependencies - toy\n\nNot a corpus file.\n")
    (folder / "toy-ud-train.txt").write_text("raw text, as UD releases have it\n")
    return folder


def test_conllu_is_read_with_upos_features_and_ud_splits(conllu_dir):
    data = corpora.load_corpus(str(conllu_dir))
    reference = languages.generate_documents(n_docs=20, sentences_per_doc=40)
    first = reference[0][0]
    assert data.words["train"][:len(first)] == [w for w, _, _ in first]       # no multiword, no ghost
    assert "ghost" not in data.words["train"]
    assert list(data.tags["train"][:len(first)]) == [UPOS[t][0] for _, t, _ in first]
    assert list(data.feats["train"][:len(first)]) == [UPOS[t][1] for _, t, _ in first]
    n_valid = sum(len(s) + 1 for doc in reference[16:18] for s in doc)     # + <eos> per sentence
    assert len(data.ids["valid"]) == n_valid and data.scheme == "upos"
    xpos = corpora.load_corpus(str(conllu_dir), tag_column="xpos")
    assert list(xpos.tags["train"][:len(first)]) == [t for _, t, _ in first] and xpos.scheme == "brown"


def test_word_tag_text_is_split_into_documents(tmp_path):
    path = tmp_path / "tagged.txt"
    write_word_tag(path, languages.generate_documents(n_docs=10, sentences_per_doc=40))   # 400 sentences
    data = corpora.load_corpus(str(path))
    sizes = {s: len(data.ids[s]) for s in corpus.SPLITS}
    assert data.scheme == "brown" and all(sizes.values())
    assert sizes["train"] > 5 * sizes["valid"]                          # blocks of 50: 6 train, 1, 1
    with pytest.raises(corpus.CorpusError, match="no valid and no test text"):
        write_word_tag(path, languages.generate_documents(n_docs=1, sentences_per_doc=40))
        corpora.load_corpus(str(path))


def test_a_folder_of_small_files_is_split_as_one_text(tmp_path):
    for i, sents in enumerate(languages.generate_documents(n_docs=10, sentences_per_doc=40)):
        write_word_tag(tmp_path / f"part{i:02d}", [sents])            # 40 sentences each
    data = corpora.load_corpus(str(tmp_path))
    assert all(len(data.ids[s]) > 0 for s in corpus.SPLITS)


def test_tags_no_built_in_scheme_knows_need_a_class_file(tmp_path, capsys):
    path = tmp_path / "odd.txt"
    path.write_text("".join(" ".join(f"{w}/T{len(w)}" for w, _, _ in s) + "\n"
                            for doc in languages.generate_documents(n_docs=10) for s in doc))
    assert corpora.load_corpus(str(path)).scheme is None
    out = tmp_path / "odd.npz"
    assert train.main([*SMALL, "--corpus", str(path), "--out", str(out)]) == 0
    assert analyze.main(["--checkpoints", str(out), "--out-dir", str(tmp_path), "--no-progress"]) == 1
    assert "no built-in classes fit the tags" in capsys.readouterr().err


@pytest.mark.parametrize("content,message", [
    ("1\tthe\tthe\tDET\tAT\t_\t0\tdep\t_\n", "bad.conllu:1: a CoNLL-U token line has 10 tab-separated fields, "
                                             "this one has 9"),
    ("# c\n1\tthe\tthe\tDET\tAT\tNumber\t0\tdep\t_\t_\n", "bad.conllu:2: features are written"),
    ("\nx\tthe\tthe\tDET\tAT\t_\t0\tdep\t_\t_\n", "bad.conllu:2: the token id 'x' is not a number"),
    ("1\tthe\tthe\t_\tAT\t_\t0\tdep\t_\t_\n", "bad.conllu:1: the token 'the' has no UPOS tag"),
    ("1\tthe\tthe\tDET\tAT\t_\t0\tdep\t_\t_\nthe/AT\n", "bad.conllu:2: a CoNLL-U token line has 10"),
    ("1\t\tthe\tDET\tAT\t_\t0\tdep\t_\t_\n", "bad.conllu:1: a token has an empty word form"),
    ("1\t<EOS>\tx\tX\tAT\t_\t0\tdep\t_\t_\n", "bad.conllu:1: the word form '<EOS>' is reserved"),
])
def test_malformed_conllu_names_file_and_line(tmp_path, capsys, content, message):
    path = tmp_path / "bad.conllu"
    path.write_text(content)
    assert train.main([*SMALL, "--corpus", str(path), "--out", str(tmp_path / "x.npz")]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_malformed_word_tag_and_missing_paths(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("the/AT cat/NN\nthe/AT dog\n")
    with pytest.raises(corpus.CorpusError, match=r"words.txt:2: 'dog' is not word/TAG"):
        corpora.load_corpus(str(path))
    path.write_text("the/AT\tcat/NN\n")                                # tabs, but not CoNLL-U
    assert own_text.read_tagged_files(str(path))[0][1] == [[("the", "AT", "_"), ("cat", "NN", "_")]]
    with pytest.raises(corpus.CorpusError, match="no corpus named"):
        corpora.load_corpus(str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(corpus.CorpusError, match="holds no files"):
        corpora.load_corpus(str(tmp_path / "empty"))


CLASSES = """# my classes
pos nouns = NOUN PROPN
pos verbs = VERB
pos function = DET ADP
class sg = NOUN PROPN ; Number=Sing
class pl = NOUN ; Number=Plur
property sg-pl = sg pl
property number = Number=Sing Number=Plur
"""


def test_class_file_format_and_matching():
    scheme = corpus.parse_scheme(CLASSES, "mine.txt")
    assert list(scheme.pos) == ["nouns", "verbs", "function"]
    assert scheme.pos_index("PROPN", "Number=Sing") == 0 and scheme.pos_index("ADJ") == -1
    sg, pl = scheme.properties["sg-pl"]
    assert sg.matches("NOUN", "Gender=Fem|Number=Sing") and not sg.matches("NOUN", "Number=Plur")
    assert not pl.matches("VERB", "Number=Plur")
    a, b = scheme.properties["number"]                             # bare features: any tag
    assert a.matches("VERB", "Number=Sing|Tense=Pres") and b.matches("PRON", "Number=Plur")
    assert sg.where == "mine.txt:5"
    brown = corpus.builtin_scheme("brown")                          # exclusions: !*+* and !*[*]
    assert brown.pos_index("PPS+BEZ") == -1 and brown.pos_index("PP$$") == brown.pos_index("PP$") == 0
    assert brown.pos_index("DOD*") == -1 and brown.pos_index("DOD") == 2


@pytest.mark.parametrize("text,message", [
    ("pos nouns NOUN\n", "mine.txt:1: expected 'pos NAME = TAGS'"),
    ("pos nouns = NOUN\nclass nouns = NOUN\n", "mine.txt:2: 'nouns' is defined twice"),
    ("pos nouns = NOUN\nproperty p = nouns verbs\n", "mine.txt:2: 'verbs' is neither a class"),
    ("pos nouns = NOUN\nproperty p = nouns\n", "mine.txt:2: property 'p' needs two classes"),
    ("pos nouns = NOUN ; Number\n", "mine.txt:1: features are written Feature=Value"),
    ("pos nouns = !NOUN\n", "mine.txt:1: class 'nouns' names no tag"),
    ("class sg = NOUN\n", "mine.txt: defines no pos class"),
])
def test_class_file_errors_name_the_line(text, message):
    with pytest.raises(corpus.CorpusError, match=message):
        corpus.parse_scheme(text, "mine.txt")


@pytest.fixture(scope="module")
def conllu_lm(conllu_dir, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("lm") / "ud.npz")
    assert train.main([*SMALL, "--corpus", str(conllu_dir), "--out", path]) == 0
    return path


def analyse(checkpoint, out_dir, *extra):
    return analyze.main(["--device", DEVICE, "--checkpoints", checkpoint, "--out-dir", str(out_dir),
                         "--max-delay", "4", "--no-progress", *extra])


def test_analysis_of_conllu_with_a_feature_property(conllu_lm, tmp_path):
    assert analyse(conllu_lm, tmp_path, "--property", "Number=Sing:Number=Plur") == 0
    results = json.loads((tmp_path / "results.json").read_text())
    model = results["models"][0]
    assert results["classes"] == "built-in upos classes"
    assert list(model["figure2"]["c"]) == ["sg-pl", "common-proper", "Number=Sing:Number=Plur"]
    words = model["properties"]["Number=Sing:Number=Plur"]["words"]
    sg_pl_words = model["properties"]["sg-pl"]["words"]
    assert words[0] > sg_pl_words[0] and words[1] > sg_pl_words[1]      # verbs and pronouns too
    assert "Number=Sing:Number=Plur" in results["table2"]


def test_analysis_with_a_class_file(conllu_lm, tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text(CLASSES)
    assert analyse(conllu_lm, tmp_path, "--classes", str(classes)) == 0
    model = json.loads((tmp_path / "results.json").read_text())["models"][0]
    assert list(model["table1"]["c"]) == ["nouns", "verbs", "function", corpus.UNK]
    assert list(model["figure2"]["c"]) == ["sg-pl", "number"]
    assert np.isfinite(model["figure2"]["c"]["number"]["m"]).all()


@pytest.mark.parametrize("classes,extra,message", [
    (CLASSES.replace("pos verbs = VERB", "pos verbs = VERB VRB"), [],
     "classes.txt:3: tag 'VRB' of class 'verbs' is not in the corpus"),
    (CLASSES.replace("class pl = NOUN ; Number=Plur", "class pl = NOUN ; Number=Dual"), [],
     "classes.txt:6: class 'pl' of property 'sg-pl' has no word"),
    (CLASSES, ["--property", "Number=Sing:sg2"], "--property Number=Sing:sg2: 'sg2' is neither a class"),
    (CLASSES, ["--property", "Number=Sing:Tense=Past"], "--property Number=Sing:Tense=Past: class 'Tense=Past'"),
])
def test_class_errors_are_one_line_naming_the_place(conllu_lm, tmp_path, capsys, classes, extra, message):
    path = tmp_path / "classes.txt"
    path.write_text(classes)
    assert analyse(conllu_lm, tmp_path, "--classes", str(path), *extra) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
