"""The user's own text: CoNLL-U (Universal Dependencies) or word/TAG files, one file or a folder.

  * ``read_text``: the lines of a UTF-8 text file (with or without a byte-order mark, LF or CRLF
    line ends), a binary file refused in one sentence; every user file (corpus or class file) is
    read through it.
  * ``read_tagged_files``: documents of a file or folder, CoNLL-U or word/TAG told apart by name or
    first line, the split taken from UD-style file names or cut by ``corpus.split_of``.
  * ``read_conllu``, ``read_word_tag``: the two line formats; a malformed line raises
    ``corpus.CorpusError`` naming file:line.
  * ``guess_scheme``: the built-in class scheme that fits the tags of the user's text.

``tool.corpora.load_corpus`` calls it for any corpus name that is a path; ``read_scheme`` reads
the user's class file (``analyze.py --classes``).
"""
from __future__ import annotations

import collections
import os
import re
import stat

from corpus import (CORPORA, EOS, NO_FEATS, SENTENCES_PER_DOCUMENT, UNK, CorpusError,
                    builtin_scheme, parse_scheme, quote)


MAX_CLASS_FILE = 1 << 20      # bytes: a class file is a few lines
RESERVED_FORMS = (EOS, UNK)   # the word forms the vocabulary reserves


def read_text(path: str, kind: str, max_bytes: int | None = None) -> list:
    """The lines of a UTF-8 text file, without line ends: (str, ...) list.

    Args:
        path: the file.   kind: what it should hold, for messages ("CoNLL-U or word/TAG text").
        max_bytes: the largest file accepted (None: any size).
    A leading byte-order mark is dropped; CRLF, CR and LF all end a line. A file with a NUL byte or
    bytes that are not UTF-8 raises CorpusError naming it and the line of the first bad byte; so
    does anything but a regular file (a device or a FIFO would never end) and a file too large.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise CorpusError(f"{path} is not a regular file (a device, a FIFO or a socket): give "
                              f"{kind} in a file")
        with open(path, "rb") as f:
            data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    except OSError as error:
        raise CorpusError(f"cannot read {path}: {error.strerror or error}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise CorpusError(f"{path} is larger than {max_bytes // 1024} KiB: too large for {kind}")
    data = data[3:] if data.startswith(b"\xef\xbb\xbf") else data         # the byte-order mark
    bad = data.find(b"\x00")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = error.start if bad < 0 else min(bad, error.start)
    if bad >= 0:
        line = data[:bad].count(b"\n") + 1
        where = ("a UTF-16 byte-order mark" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else
                 f"byte 0x{data[bad]:02x} on line {line}")
        raise CorpusError(f"{path} is a binary file, not UTF-8 text ({where}): give {kind} saved as "
                          f"UTF-8")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def read_scheme(path: str):
    """The user's class file ``path`` (``analyze.py --classes``) as a corpus.Scheme."""
    return parse_scheme("\n".join(read_text(path, "a class file", max_bytes=MAX_CLASS_FILE)), path,
                        user_file=True)


def read_tagged_files(path: str, tag_column: str = "upos"):
    """Documents (as ``read_documents``) of a CoNLL-U or word/TAG file, or of every file in a folder.

    A file is CoNLL-U when it ends in .conllu/.conll or its first line has 10 tab-separated
    fields; else it holds one sentence per line of whitespace-separated ``word/TAG`` tokens. A
    folder's .conllu/.conll files are read if it has any (a UD release also holds README, LICENSE
    and raw text), else all its files. Files named like UD's ``en_ewt-ud-dev.conllu`` (train, dev
    or test between - _ or .) go whole to that split; the others are cut, in file-name order, into
    documents of 50 sentences, split by ``corpus.split_of`` over the whole folder.
    """
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if not f.startswith(".") and os.path.isfile(os.path.join(path, f)))
        conllu = [f for f in files if f.endswith((".conllu", ".conll"))]
        files = conllu or files
        if not files:
            raise CorpusError(f"the folder {path} holds no files")
    elif os.path.isfile(path):
        files = [path]
    else:
        raise CorpusError(f"no corpus named {quote(path)}: choose one of {', '.join(CORPORA)}, or "
                          f"give a file or folder of CoNLL-U or word/TAG text")
    docs = []
    for file in files:
        lines = read_text(file, "CoNLL-U or word/TAG text")
        first = next((line for line in lines if line.strip() and not line.startswith("#")), "")
        if file.endswith((".conllu", ".conll")) or first.count("\t") == 9:
            sents = read_conllu(lines, file, tag_column)
        else:
            sents = read_word_tag(lines, file)
        named = re.search(r"[-_.](train|dev|valid|test)[-_.]", os.path.basename(file))
        split = {"dev": "valid"}.get(named.group(1), named.group(1)) if named else None
        docs += [(path, sents[i:i + SENTENCES_PER_DOCUMENT], split)       # one genre: the path
                 for i in range(0, len(sents), SENTENCES_PER_DOCUMENT)]
    return docs


def read_conllu(lines, file: str, tag_column: str = "upos"):
    """Sentences of (FORM, UPOS or XPOS, FEATS) from CoNLL-U lines; multiword-token lines
    (1-2) and empty nodes (1.1) are skipped. Malformed lines raise CorpusError naming file:line."""
    column = {"upos": 3, "xpos": 4}[tag_column]
    sents, sent = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            if sent:
                sents.append(sent)
            sent = []
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise CorpusError(f"{file}:{number}: a CoNLL-U token line has 10 tab-separated fields, "
                              f"this one has {len(fields)}")
        if "-" in fields[0] or "." in fields[0]:
            continue
        if not fields[0].isdigit():
            raise CorpusError(f"{file}:{number}: the token id {quote(fields[0])} is not a number")
        tag, feats = fields[column], fields[5]
        if tag == "_":
            raise CorpusError(f"{file}:{number}: the token {quote(fields[1])} has no "
                              f"{tag_column.upper()} tag"
                              + (" (try --tag-column upos)" if tag_column == "xpos" else ""))
        if feats != NO_FEATS and any(f.count("=") != 1 for f in feats.split("|")):
            raise CorpusError(f"{file}:{number}: features are written Feature=Value|..., "
                              f"found {quote(feats)}")
        check_form(fields[1], file, number)
        sent.append((fields[1], tag, feats))
    return sents + [sent] if sent else sents


def read_word_tag(lines, file: str):
    """Sentences of (word, TAG, no features) from lines of ``word/TAG`` tokens (the last / splits)."""
    sents = []
    for number, line in enumerate(lines, 1):
        sent = []
        for token in line.split():
            word, slash, tag = token.rpartition("/")
            if not (slash and word and tag):
                raise CorpusError(f"{file}:{number}: {quote(token)} is not word/TAG")
            check_form(word, file, number)
            sent.append((word, tag, NO_FEATS))
        if sent:
            sents.append(sent)
    return sents


def check_form(word: str, file: str, number: int) -> None:
    """A word form must be a word: not empty, not one of the vocabulary's reserved forms."""
    if not word.strip():
        raise CorpusError(f"{file}:{number}: a token has an empty word form")
    if word.lower() in RESERVED_FORMS:
        raise CorpusError(f"{file}:{number}: the word form {quote(word)} is reserved (the "
                          f"vocabulary's {' and '.join(RESERVED_FORMS)}): rename it in the text")


def guess_scheme(tags):
    """The built-in scheme whose POS classes cover the most tokens of the user's own text, or
    None when none covers a third of them (analyze.py then asks for a class file)."""
    counts = collections.Counter(tags)

    def covered(name):
        scheme = builtin_scheme(name)
        return sum(n for tag, n in counts.items() if scheme.pos_index(tag) >= 0)

    coverage = {name: covered(name) for name in ("upos", "treebank", "brown")}
    best = max(coverage, key=coverage.get)
    return best if coverage[best] >= sum(counts.values()) / 3 else None
