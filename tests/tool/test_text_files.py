"""Reading the user's text files (CoNLL-U, word/TAG, class files): UTF-8 with or without a byte-order
mark, LF or CRLF line ends, binary files refused in one sentence, long tokens shortened in messages,
and fuzzing: whatever the bytes or lines, only corpus.CorpusError comes out, naming file:line."""
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import corpus
import train
from tool import own_text
from conftest import DEVICE

CONLLU = ["# sent_id = 1", "1\tthe\tthe\tDET\tAT\t_\t0\tdep\t_\t_",
          "2\tcats\tcat\tNOUN\tNNS\tNumber=Plur\t0\tdep\t_\t_", "",
          "1\tdogs\tdog\tNOUN\tNNS\t_\t0\tdep\t_\t_", ""]
WORD_TAG = ["the/AT cats/NNS see/VBP", "a/AT dog/NN"]
CLASSES = ["# mine", "pos nouns = NN NNS", "class sg = NN", "class pl = NNS", "property sg-pl = sg pl"]
BOM = "\ufeff"


def write(path, lines, newline="\n", bom=False):
    path.write_bytes(((BOM if bom else "") + newline.join(lines) + newline).encode("utf-8"))
    return str(path)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("bom", [False, True])
def test_bom_and_crlf_read_like_plain_utf8(tmp_path, newline, bom):
    conllu = own_text.read_tagged_files(write(tmp_path / "a.conllu", CONLLU, newline, bom))
    assert conllu[0][1] == [[("the", "DET", "_"), ("cats", "NOUN", "Number=Plur")], [("dogs", "NOUN", "_")]]
    as_txt = own_text.read_tagged_files(write(tmp_path / "a.txt", CONLLU[1:], newline, bom))
    assert as_txt[0][1] == conllu[0][1]                            # CoNLL-U told by its first line
    word_tag = own_text.read_tagged_files(write(tmp_path / "b.txt", WORD_TAG, newline, bom))
    assert word_tag[0][1][0][0] == ("the", "AT", "_")                # not '\ufeffthe'
    scheme = own_text.read_scheme(write(tmp_path / "classes.txt", CLASSES, newline, bom))
    assert list(scheme.pos) == ["nouns"] and scheme.classes["pl"].where.endswith("classes.txt:4")
    assert scheme.classes["pl"].tags == ("NNS",)


def test_only_line_ends_end_a_line(tmp_path):
    """Form feeds and Unicode line separators inside a token stay in it (no shifted line numbers)."""
    path = write(tmp_path / "odd.conllu", ["1\ta\u2028b\t_\tX\t_\t_\t_\t_\t_\t_", "", "1\tc\x0cd\t_\tX"])
    with pytest.raises(corpus.CorpusError, match=r"odd.conllu:3: a CoNLL-U token line has 10"):
        own_text.read_tagged_files(path)
    assert own_text.read_text(path, "text")[0].startswith("1\ta\u2028b")


@pytest.mark.parametrize("content,where", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "byte 0x89 on line 1"),
    (b"the/AT cat/NN\nthe/AT\x00 dog/NN\n", "byte 0x00 on line 2"),
    ("the/AT\ncaf\u00e9/NN\n".encode("latin-1"), "byte 0xe9 on line 2"),
    (b"\xef\xbb\xbfthe/AT\ncaf\xe9/NN\n", "byte 0xe9 on line 2"),               # after a byte-order mark
    ("the/AT\ncat/NN\n".encode("utf-16"), "a UTF-16 byte-order mark"),
])
def test_binary_files_are_refused_in_one_sentence(tmp_path, content, where):
    for name in ("data.conllu", "data.txt"):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(corpus.CorpusError) as error:
            own_text.read_tagged_files(str(tmp_path / name))
        assert str(error.value).startswith(f"{tmp_path / name} is a binary file, not UTF-8 text ({where})")
    (tmp_path / "classes.txt").write_bytes(content)
    with pytest.raises(corpus.CorpusError, match=r"classes.txt is a binary file, not UTF-8 text .*class file"):
        own_text.read_scheme(str(tmp_path / "classes.txt"))


def test_a_binary_corpus_stops_train_with_one_line(tmp_path, capsys):
    (tmp_path / "model.conllu").write_bytes(bytes(range(256)))
    assert train.main(["--device", DEVICE, "--corpus", str(tmp_path / "model.conllu"), "--no-progress",
                       "--out", str(tmp_path / "x.npz")]) == 1
    err = capsys.readouterr().err
    assert "model.conllu is a binary file, not UTF-8 text" in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_messages_shorten_long_tokens(tmp_path):
    huge = "x" * 100_000
    cases = [(lambda: own_text.read_word_tag(["a/AT", f"ok/NN {huge}"], "w.txt"), "w.txt:2: 'xxx"),
             (lambda: own_text.read_conllu([f"{huge}\t" + "\t".join("_" * 9)], "c.conllu"), "c.conllu:1: the"),
             (lambda: corpus.parse_scheme(f"pos {huge} = NN\npos {huge} = NN", "m.txt"), "m.txt:2: 'xxx"),
             (lambda: corpus.parse_scheme(f"pos a = NN\nproperty p = a {huge}", "m.txt"), "m.txt:2: 'xxx")]
    for read, start in cases:
        with pytest.raises(corpus.CorpusError) as error:
            read()
        message = str(error.value)
        assert message.startswith(start) and "...'" in message and len(message) < 250, message[:300]
    scheme = corpus.parse_scheme(f"pos a = {huge}", "m.txt")
    with pytest.raises(corpus.CorpusError) as error:
        corpus.check_tags_exist(scheme, ["NN", "y" * 100_000])
    assert len(str(error.value)) < 300 and "yyy..." in str(error.value)


# ----------------------------------------------------------------------------------------------
# Fuzzing: random lines into the line readers, random bytes into the files
# ----------------------------------------------------------------------------------------------

PIECES = st.sampled_from(["1", "2", "1-2", "1.1", "x", "_", "NN", "the", "Number=Sing", "Number", "a|b=c",
                          "#", "/", "the/AT", "a/", "/NN", "", " ", "\u00e9", "\ufeff", "\x00", "\u2028"])
SOME = st.one_of(PIECES, st.text(max_size=6))
FIELDS = st.lists(SOME, max_size=12)
CONLLU_TOKEN = st.tuples(                                          # mostly 10 fields, as CoNLL-U has
    st.one_of(st.sampled_from(["1", "2", "10", "1-2", "1.1", "x", "", "\u00b2"]), SOME), SOME, SOME,
    st.one_of(st.sampled_from(["NOUN", "NN", "_", ""]), SOME), st.one_of(st.sampled_from(["NN", "_"]), SOME),
    st.one_of(st.sampled_from(["_", "Number=Sing", "A=B|C=D", "Number", "a=b=c", "A=B|", "="]), SOME),
    SOME, SOME, SOME, SOME).map("\t".join)
CONLLU_LINES = st.lists(st.one_of(CONLLU_TOKEN, CONLLU_TOKEN, FIELDS.map("\t".join), st.just(""),
                                  SOME.map("# ".__add__)), max_size=12)
WORD_TAG_LINES = st.lists(st.one_of(FIELDS.map(" ".join), st.text(max_size=20)), max_size=8)
SCHEME_TAGS = st.sampled_from(["NN", "NN*", "!NN", "[*]", "!*[*]", "*", "[", "[!", "[z-a]", "!", "a=b",
                               "\ufeff"])
NAMES = st.sampled_from(["nouns", "sg", "pl", "verbs", "\ufeff"])
SCHEME_LINE = st.one_of(                                           # the shape of a class file's lines
    st.tuples(st.sampled_from(["pos", "pos", "class"]), NAMES, st.lists(SCHEME_TAGS, min_size=1, max_size=4),
              st.sampled_from(["", "", "", ";", "; Number=Sing", "; a=b c=d", "; Number"])).map(
        lambda t: f"{t[0]} {t[1]} = {' '.join(t[2])} {t[3]}"),
    st.tuples(NAMES, st.lists(st.one_of(NAMES, st.sampled_from(["Number=Sing", "a=b=c"])), min_size=2,
                              max_size=2)).map(lambda t: f"property p{t[0]} = {' '.join(t[1])}"),
    SOME.map("# ".__add__))
BROKEN_LINE = st.one_of(st.text(max_size=12), st.lists(st.one_of(SCHEME_TAGS, SOME), max_size=5).map(" ".join))
SCHEME_LINES = st.one_of(st.lists(SCHEME_LINE, max_size=6),                # whole files of good lines
                         st.lists(st.one_of(SCHEME_LINE, BROKEN_LINE), max_size=6))

FILE_LEVEL = ("is a binary file", "defines no pos class")          # messages about the whole file


def check_message(error, file, n_lines):
    """A CorpusError names the file, and file:line (a line that exists) unless the whole file is at fault."""
    message = str(error)
    assert file in message and "\n" not in message and len(message) < 500, message
    numbers = [int(n) for n in re.findall(re.escape(file) + r":(\d+):", message)]
    if not any(part in message for part in FILE_LEVEL):
        assert len(numbers) == 1 and 1 <= numbers[0] <= max(n_lines, 1), message


@settings(deadline=None, max_examples=150)
@given(lines=CONLLU_LINES, xpos=st.booleans())
def test_fuzz_conllu_lines(lines, xpos):
    try:
        sents = own_text.read_conllu(lines, "fuzz.conllu", "xpos" if xpos else "upos")
    except corpus.CorpusError as error:
        check_message(error, "fuzz.conllu", len(lines))
    else:
        assert all(len(token) == 3 for sent in sents for token in sent)


@settings(deadline=None, max_examples=150)
@given(lines=WORD_TAG_LINES)
def test_fuzz_word_tag_lines(lines):
    try:
        sents = own_text.read_word_tag(lines, "fuzz.txt")
    except corpus.CorpusError as error:
        check_message(error, "fuzz.txt", len(lines))
    else:
        assert all(word and tag for sent in sents for word, tag, _ in sent)


@settings(deadline=None, max_examples=150)
@given(lines=SCHEME_LINES)
def test_fuzz_class_file_lines(lines):
    try:
        scheme = corpus.parse_scheme("\n".join(lines), "fuzz.classes")
    except corpus.CorpusError as error:
        check_message(error, "fuzz.classes", len(lines))
    else:
        for tag in ("NN", "*", "[", "Number=Sing", ""):       # the first class that matches, or -1
            matching = [i for i, c in enumerate(scheme.pos.values()) if c.matches(tag)]
            assert scheme.pos_index(tag) == (matching[0] if matching else -1)
        try:
            corpus.check_tags_exist(scheme, ["NN", "*", "VB"])
        except corpus.CorpusError as error:
            check_message(error, "fuzz.classes", len(lines))


TEXT_BYTES = st.one_of(
    st.binary(max_size=200),
    CONLLU_LINES.map(lambda lines: "\n".join(lines).encode("utf-8")),
    st.tuples(st.sampled_from([b"", BOM.encode()]), st.sampled_from([b"\n", b"\r\n", b"\r"]),
              st.one_of(CONLLU_LINES, WORD_TAG_LINES, SCHEME_LINES)).map(
        lambda t: t[0] + t[1].join(line.encode("utf-8", "surrogatepass") for line in t[2])))


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=TEXT_BYTES, name=st.sampled_from(["fuzz.conllu", "fuzz.txt"]))
def test_fuzz_files_of_random_bytes(tmp_path, data, name):
    """Corpus files and class files of any bytes: documents, a scheme, or one CorpusError."""
    path = tmp_path / name
    path.write_bytes(data)
    n_lines = data.count(b"\n") + data.count(b"\r") + 1
    try:
        own_text.read_tagged_files(str(path))
    except corpus.CorpusError as error:
        check_message(error, str(path), n_lines)
    try:
        own_text.read_scheme(str(path))
    except corpus.CorpusError as error:
        check_message(error, str(path), n_lines)
