"""Corpora with gold part-of-speech tags, the vocabulary, and the word classes of the analysis.

Everything the two scripts need to turn tagged text into word ids and class labels:

  * ``load_corpus``: Brown (NLTK, gold Brown tags), the NLTK Penn Treebank sample (the paper's
    tagset), ``synthetic`` (a language with planted memory: number agreement over 1..D words and a
    distractor), ``generated`` (the tests' toy English), or the user's own CoNLL-U or ``word/TAG``
    files; lower-cased, ``<eos>`` after every sentence, tags and CoNLL-U features aligned to every
    token, split by document (80/10/10, every genre in every split) unless file names say the split.
  * the vocabulary: the ``vocab_size`` most frequent training words plus ``<unk>``.
  * class schemes: which tags (and features) form the POS classes of Table 1 and the two sides of
    each property of Figure 2; built in for every kind of corpus, or read from a small file.
"""
from __future__ import annotations

import collections
import math
import os
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import numpy as np

EOS, UNK = "<eos>", "<unk>"
SPLITS = ("train", "valid", "test")
CORPORA = ("brown", "treebank", "synthetic", "generated")   # or the path of the user's own files
NO_FEATS = "_"                      # CoNLL-U's empty feature column
SENTENCES_PER_DOCUMENT = 50         # the user's files and the synthetic language: one "document"


class CorpusError(Exception):
    """A corpus (or class file) that cannot be used, with a message that says what to do."""


# ----------------------------------------------------------------------------------------------
# Class schemes: which tags and features form the classes of the analysis
# ----------------------------------------------------------------------------------------------
# One line per class or property (the format of ``--classes FILE`` in analyze.py):
#
#   pos NAME = TAG ... [; Feature=Value ...]     a POS class of Table 1 (also usable below)
#   class NAME = TAG ... [; Feature=Value ...]   a class used by a property only
#   property NAME = CLASS_A CLASS_B              d_{a-b} of eq. (2) for Figure 2; a side may also be
#                                                a bare Feature=Value (any tag with that feature)
#
# TAGs are shell patterns (VB* matches VBD); !PATTERN excludes; features must all be present.
# A token is in the first pos class that matches it. Lines starting with # are comments.

SCHEMES = {
    "brown": """
# Brown tags, -TL/-HL/-NC suffixes dropped; compound tags (PPS+BEZ) and PP$$ (mine) in no class
pos pronouns = PP* !*$$ !*+*
pos nouns = NN NNS NP NPS
pos verbs = VB* BE* HV* DO* !*$$ !*+*
pos adjectives = JJ* !*$$ !*+*
pos adverbs = RB* !*$$ !*+*
pos conj./prep. = CC CS IN
class sg = NN NP
class pl = NNS NPS
class common = NN NNS
class proper = NP NPS
property sg-pl = sg pl
property common-proper = common proper
""",
    "treebank": """
# Penn Treebank tags (the paper's)
pos pronouns = PRP PRP$
pos nouns = NN NNS NNP NNPS
pos verbs = VB*
pos adjectives = JJ*
pos adverbs = RB*
pos conj./prep. = CC IN
class sg = NN NNP
class pl = NNS NNPS
class common = NN NNS
class proper = NNP NNPS
property sg-pl = sg pl
property common-proper = common proper
""",
    "upos": """
# Universal Dependencies: UPOS tags and Number features (any language)
pos pronouns = PRON
pos nouns = NOUN PROPN
pos verbs = VERB AUX
pos adjectives = ADJ
pos adverbs = ADV
pos conj./prep. = CCONJ SCONJ ADP
class sg = NOUN PROPN ; Number=Sing
class pl = NOUN PROPN ; Number=Plur
class common = NOUN
class proper = PROPN
property sg-pl = sg pl
property common-proper = common proper
""",
    "synthetic": """
# the planted-memory language: number must be kept until the verb, the adjective group need not
pos nouns = NN NNS
pos verbs = VBZ VBP
pos adjectives = JJ
pos adverbs = RB
pos determiners = DT
class sg = NN
class pl = NNS
class group-A = JJ ; Group=A
class group-B = JJ ; Group=B
property sg-pl = sg pl
property distractor = group-A group-B
""",
}
SCHEME_OF_CORPUS = {"brown": "brown", "generated": "brown", "treebank": "treebank",
                    "synthetic": "synthetic"}


@dataclass(frozen=True)
class WordClass:
    """Tokens whose tag matches a pattern of ``tags`` and none of ``not_tags``, and whose features
    include all of ``feats``; ``where`` is the file:line of its definition, for error messages."""
    name: str
    tags: tuple
    not_tags: tuple = ()
    feats: frozenset = frozenset()
    where: str = ""

    def matches(self, tag: str, feats: str = NO_FEATS) -> bool:
        return (tag != EOS and any(fnmatchcase(tag, p) for p in self.tags)
                and not any(fnmatchcase(tag, p) for p in self.not_tags)
                and self.feats <= set(feats.split("|")))


@dataclass
class Scheme:
    """POS classes (Table 1, in order), every named class, and the properties of Figure 2."""
    source: str
    pos: dict                  # name -> WordClass
    classes: dict              # name -> WordClass (the pos classes too)
    properties: dict           # name -> (WordClass a, WordClass b)
    user_file: bool = False

    def pos_index(self, tag: str, feats: str = NO_FEATS) -> int:
        """Index of the first pos class a token is in, -1 for none."""
        return first_match(self.pos.values(), tag, feats)

    def pos_labels(self, tags, feats):
        """``pos_index`` of every token: (N,) int64."""
        return token_labels(self.pos.values(), tags, feats)


def first_match(classes, tag: str, feats: str = NO_FEATS) -> int:
    """Index of the first of ``classes`` (WordClass) a token is in, -1 for none."""
    return next((i for i, c in enumerate(classes) if c.matches(tag, feats)), -1)


def token_labels(classes, tags, feats):
    """``first_match`` for every token: (N,) int64."""
    classes = list(classes)
    index = {key: first_match(classes, *key) for key in set(zip(tags, feats))}
    return np.array([index[key] for key in zip(tags, feats)], dtype=np.int64)


def parse_scheme(text: str, source: str, user_file: bool = False) -> Scheme:
    """A Scheme from the line format above; errors name ``source`` and the line."""
    scheme = Scheme(source, {}, {}, {}, user_file)
    for number, line in enumerate(text.splitlines(), 1):
        line, where = line.strip(), f"{source}:{number}"
        if not line or line.startswith("#"):
            continue
        kind, _, rest = line.partition(" ")
        name, equals, body = (part.strip() for part in rest.partition("="))
        if kind not in ("pos", "class", "property") or not equals or not name or " " in name:
            raise CorpusError(f"{where}: expected 'pos NAME = TAGS', 'class NAME = TAGS' or "
                              f"'property NAME = CLASS CLASS', found {line!r}")
        if name in scheme.classes or name in scheme.properties:
            raise CorpusError(f"{where}: {name!r} is defined twice")
        if kind == "property":
            sides = body.split()
            if len(sides) != 2:
                raise CorpusError(f"{where}: property {name!r} needs two classes, found {body!r}")
            scheme.properties[name] = tuple(property_side(scheme, side, where) for side in sides)
            continue
        patterns, _, feats = body.partition(";")
        tags = tuple(p for p in patterns.split() if not p.startswith("!"))
        if not tags:
            raise CorpusError(f"{where}: class {name!r} names no tag")
        if any(f.count("=") != 1 for f in feats.split()):
            raise CorpusError(f"{where}: features are written Feature=Value, found {feats.strip()!r}")
        word_class = WordClass(name, tags, tuple(p[1:] for p in patterns.split() if p.startswith("!")),
                               frozenset(feats.split()), where)
        scheme.classes[name] = word_class
        if kind == "pos":
            scheme.pos[name] = word_class
    if not scheme.pos:
        raise CorpusError(f"{source}: defines no pos class (Table 1 needs at least one)")
    return scheme


def property_side(scheme: Scheme, side: str, where: str) -> WordClass:
    """One side of a property: a class of ``scheme``, or a bare Feature=Value (any tag with it)."""
    if side in scheme.classes:
        return scheme.classes[side]
    if side.count("=") != 1:
        raise CorpusError(f"{where}: {side!r} is neither a class of {scheme.source} nor a "
                          f"Feature=Value")
    return WordClass(side, ("*",), (), frozenset([side]), where)


def builtin_scheme(name: str) -> Scheme:
    return parse_scheme(SCHEMES[name], f"built-in {name} classes")


def read_scheme(path: str) -> Scheme:
    """The user's class file (``analyze.py --classes``)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as error:
        raise CorpusError(f"cannot read the class file {path}: {error}") from None
    return parse_scheme(text, path, user_file=True)


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


def check_tags_exist(scheme: Scheme, tags) -> None:
    """A class file must not name a tag the corpus lacks (a typo would silently empty a class)."""
    present = set(tags)
    for word_class in scheme.classes.values():
        for pattern in word_class.tags:
            if not any(fnmatchcase(tag, pattern) for tag in present):
                shown = ", ".join(sorted(present - {EOS})[:30])
                raise CorpusError(f"{word_class.where}: tag {pattern!r} of class {word_class.name!r} "
                                  f"is not in the corpus (its tags: {shown})")


def normalize_tag(tag: str, corpus: str) -> str:
    """Brown: drop the title/headline/cited-word suffixes -TL, -HL, -NC (``NN-TL`` -> ``NN``)."""
    if corpus in ("brown", "generated"):
        parts = [p for p in tag.split("-") if p not in ("TL", "HL", "NC")]
        tag = "-".join(parts) if parts else tag
    return tag


# ----------------------------------------------------------------------------------------------
# Reading the corpora
# ----------------------------------------------------------------------------------------------

def _nltk_reader(name: str):
    """The NLTK corpus reader for ``name``, offline from NLTK_DATA, else downloaded once."""
    import nltk
    try:
        nltk.data.find(f"corpora/{name}/")       # the trailing / also finds corpora/{name}.zip
    except LookupError:
        if not nltk.download(name, quiet=True, raise_on_error=False):
            raise CorpusError(
                f"the {name} corpus is not installed and could not be downloaded: run "
                f"`python -m nltk.downloader {name}` when online, or set NLTK_DATA to a folder "
                f"that holds corpora/{name}.zip") from None
    return getattr(__import__("nltk.corpus", fromlist=[name]), name)


def split_of(index_in_genre: int) -> str:
    """The split of the document that comes ``index_in_genre``-th (0-based) in its genre's file
    order: 4 mod 10 -> valid, 5 mod 10 -> test, else train (80/10/10, every genre in every split)."""
    return {4: "valid", 5: "test"}.get(index_in_genre % 10, "train")


def read_documents(name: str, seed: int = 0, max_distance: int = 15, fixed_distance: bool = False,
                   tag_column: str = "upos"):
    """Tagged documents of a corpus: a list of (genre, [sentence of (word, tag, feats)], split).

    ``split`` is None where the document rule (``split_of``) decides, else the split a file's name
    asks for. The Treebank's ``-NONE-`` traces are dropped. ``name`` may be the path of the
    user's own files (``read_tagged_files``).
    """
    if name == "generated":
        return [("generated", sents, None) for sents in generate_documents(seed=seed)]
    if name == "synthetic":
        sents = generate_planted(max_distance=max_distance, fixed_distance=fixed_distance, seed=seed)
        return [("synthetic", sents[i:i + SENTENCES_PER_DOCUMENT], None)
                for i in range(0, len(sents), SENTENCES_PER_DOCUMENT)]
    if name not in CORPORA:
        return read_tagged_files(name, tag_column)
    reader = _nltk_reader(name)
    docs = []
    if name == "brown":
        for genre in reader.categories():
            for fileid in reader.fileids(categories=genre):
                sents = [[(w, t, NO_FEATS) for w, t in s] for s in reader.tagged_sents(fileids=fileid)]
                docs.append((genre, sents, None))
    else:
        for fileid in reader.fileids():
            sents = [[(w, t, NO_FEATS) for w, t in s if t != "-NONE-"]
                     for s in reader.tagged_sents(fileid)]
            docs.append(("wsj", [s for s in sents if s], None))
    return docs


# ----------------------------------------------------------------------------------------------
# The user's own text: CoNLL-U (Universal Dependencies) or word/TAG, one file or a folder
# ----------------------------------------------------------------------------------------------

def read_tagged_files(path: str, tag_column: str = "upos"):
    """Documents (as ``read_documents``) of a CoNLL-U or word/TAG file, or of every file in a folder.

    A file is CoNLL-U when it ends in .conllu/.conll or its first line has 10 tab-separated
    fields; else it holds one sentence per line of whitespace-separated ``word/TAG`` tokens. A
    folder's .conllu/.conll files are read if it has any (a UD release also holds README, LICENSE
    and raw text), else all its files. Files named like UD's ``en_ewt-ud-dev.conllu`` (train, dev
    or test between - _ or .) go whole to that split; the others are cut, in file-name order, into
    documents of 50 sentences, split by ``split_of`` over the whole folder.
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
        raise CorpusError(f"no corpus named {path!r}: choose one of {', '.join(CORPORA)}, or give a "
                          f"file or folder of CoNLL-U or word/TAG text")
    docs = []
    for file in files:
        try:
            with open(file, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise CorpusError(f"cannot read {file}: {error}") from None
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
            raise CorpusError(f"{file}:{number}: the token id {fields[0]!r} is not a number")
        tag, feats = fields[column], fields[5]
        if tag == "_":
            raise CorpusError(f"{file}:{number}: the token {fields[1]!r} has no {tag_column.upper()} "
                              f"tag" + (" (try --tag-column upos)" if tag_column == "xpos" else ""))
        if feats != NO_FEATS and any(f.count("=") != 1 for f in feats.split("|")):
            raise CorpusError(f"{file}:{number}: features are written Feature=Value|..., "
                              f"found {feats!r}")
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
                raise CorpusError(f"{file}:{number}: {token!r} is not word/TAG")
            sent.append((word, tag, NO_FEATS))
        if sent:
            sents.append(sent)
    return sents


# ----------------------------------------------------------------------------------------------
# A language with planted memory: number agreement over 1..D words, and a distractor
# ----------------------------------------------------------------------------------------------

PLANTED_LEXICON = {
    "nouns": "cat dog bird horse fox cow duck goat lion wolf bear frog owl rat bee ant hen pig yak "
             "eel".split(),                              # singular; the plural adds -s
    "verbs": "run walk sleep jump swim sing eat hide wait dance".split(),   # plural; sg adds -s
    "group-A": "red blue green yellow black white pink brown grey purple".split(),
    "group-B": "big small tall short old young long wide thin round".split(),
    "fillers": "very often never always slowly quickly still again here there soon today now then "
               "also even just only almost quite".split(),
}


def generate_planted(n_sentences: int = 20000, max_distance: int = 15, fixed_distance: bool = False,
                     seed: int = 0):
    """Sentences ``the ADJ NOUN filler ... VERB`` whose memory we know, with tags and features.

    Number (NN Number=Sing / NNS Number=Plur, one half each) decides the verb form (VBZ / VBP),
    which comes d words after the noun, d drawn uniformly from 1..D (always D with
    ``fixed_distance``), with d - 1 adverbs (RB) drawn at random in between: an LM must keep the
    number for up to D words, and has no use for it after the verb. The adjective's group (JJ
    Group=A / Group=B, one half each: as frequent as number) changes nothing downstream, a
    distractor an LM has no reason to keep.
    """
    rng = np.random.default_rng(seed)

    def pick(words):
        return words[rng.integers(len(words))]

    lex = PLANTED_LEXICON
    sents = []
    for _ in range(n_sentences):
        plural, group = bool(rng.integers(2)), "AB"[rng.integers(2)]
        distance = max_distance if fixed_distance else int(rng.integers(1, max_distance + 1))
        number = "Number=Plur" if plural else "Number=Sing"
        sent = [("the", "DT", NO_FEATS), (pick(lex[f"group-{group}"]), "JJ", f"Group={group}"),
                (pick(lex["nouns"]) + "s" * plural, "NNS" if plural else "NN", number)]
        sent += [(pick(lex["fillers"]), "RB", NO_FEATS) for _ in range(distance - 1)]
        sent.append((pick(lex["verbs"]) + "s" * (not plural), "VBP" if plural else "VBZ", number))
        sents.append(sent)
    return sents


def planted_perplexity(max_distance: int = 15, fixed_distance: bool = False,
                       remember_number: bool = True) -> float:
    """The lowest perplexity an LM can reach on the planted language: one that knows its grammar
    (exactly what ``generate_planted`` draws) and, with ``remember_number=False``, one that has
    forgotten the noun's number by the verb (two verb forms left instead of one). An LM between
    the two keeps some of the number; at the first, all of it.
    """
    lex, D = PLANTED_LEXICON, max_distance
    nats = tokens = 0.0
    for d in ([D] if fixed_distance else range(1, D + 1)):           # equally likely distances
        # "the" after <eos> and <eos> after the verb are certain; adjective, noun, fillers, verb
        nats += (math.log(len(lex["group-A"]) + len(lex["group-B"])) + math.log(2 * len(lex["nouns"]))
                 + (d - 1) * math.log(len(lex["fillers"]))
                 + math.log(len(lex["verbs"]) * (1 if remember_number else 2)))
        if not fixed_distance:     # when the verb comes: after j fillers, P(verb) = 1 / (D - j)
            nats += sum(math.log((D - j) / (D - j - 1)) for j in range(d - 1)) + math.log(D - d + 1)
        tokens += d + 4                                   # the, adjective, noun, fillers, verb, <eos>
    return math.exp(nats / tokens)


# ----------------------------------------------------------------------------------------------
# A generated corpus for tests: a small grammar with number agreement, gold Brown-style tags
# ----------------------------------------------------------------------------------------------

LEXICON = {
    "NN": "cat dog bird house tree car idea book river city".split(),
    "NNS": "cats dogs birds houses trees cars ideas books rivers cities".split(),
    "NP": "john mary london paris alice bob".split(),
    "JJ": "big small red old new happy".split(),
    "VBZ": "sees likes wants finds knows".split(),
    "VBP": "see like want find know".split(),
    "RB": "quickly often never slowly".split(),
    "IN": "in on with near".split(),
    "AT": "the a".split(),
    "PPS": "he she it".split(),
    "PPSS": "they we".split(),
    "CC": "and but".split(),
}


def generate_documents(n_docs: int = 60, sentences_per_doc: int = 40, seed: int = 0):
    """Documents (lists of sentences) of a tiny English-like language with Brown tags: subject,
    agreeing verb, object.

    Subject number (singular NN/NP/PPS vs plural NNS/PPSS) decides the verb form (VBZ vs VBP), so a
    language model must carry it across the optional adjective and adverb in between.
    """
    rng = np.random.default_rng(seed)

    def word(tag):
        options = LEXICON[tag]
        return (options[rng.integers(len(options))], tag, NO_FEATS)

    def noun_phrase(plural):
        kind = rng.integers(3)
        if kind == 0:
            return [word("PPSS" if plural else "PPS")]
        if kind == 1 and not plural:
            return [word("NP")]
        phrase = [word("AT")] if not plural or rng.random() < 0.5 else []
        phrase = [("the", "AT", NO_FEATS)] if plural and phrase else phrase
        if rng.random() < 0.5:
            phrase.append(word("JJ"))
        return phrase + [word("NNS" if plural else "NN")]

    docs = []
    for _ in range(n_docs):
        sents = []
        for _ in range(sentences_per_doc):
            plural = bool(rng.integers(2))
            sent = noun_phrase(plural)
            if rng.random() < 0.3:
                sent.append(word("RB"))
            sent.append(word("VBP" if plural else "VBZ"))
            sent += noun_phrase(bool(rng.integers(2)))
            if rng.random() < 0.3:
                sent += [word("IN")] + noun_phrase(bool(rng.integers(2)))
            sents.append(sent + [(".", ".", NO_FEATS)])
        docs.append(sents)
    return docs


# ----------------------------------------------------------------------------------------------
# Word ids, tags and the vocabulary
# ----------------------------------------------------------------------------------------------

@dataclass
class Corpus:
    """A tokenised, tagged corpus: per split, word ids, tags and features aligned token by token."""
    name: str
    vocab: list
    scheme: str | None = "brown"                # the built-in class scheme that fits its tags
    words: dict = field(default_factory=dict)   # split -> list of lower-cased words (N,)
    tags: dict = field(default_factory=dict)    # split -> np.array of normalized tags (N,)
    feats: dict = field(default_factory=dict)   # split -> np.array of CoNLL-U features (N,), "_"
    ids: dict = field(default_factory=dict)     # split -> np.int64 array (N,)

    @property
    def word_to_id(self):
        return {w: i for i, w in enumerate(self.vocab)}


def build_vocab(train_words, vocab_size: int):
    """The ``vocab_size`` most frequent training words (ties alphabetical) plus ``<unk>``."""
    counts = collections.Counter(train_words)
    counts.pop(UNK, None)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:vocab_size]
    return [w for w, _ in ranked] + [UNK]


def load_corpus(name: str = "brown", vocab_size: int = 10000, max_train_tokens: int | None = None,
                vocab=None, seed: int = 0, max_distance: int = 15, fixed_distance: bool = False,
                tag_column: str = "upos") -> Corpus:
    """Read, tokenise, split and index a corpus.

    Args:
        name: 'brown', 'treebank', 'synthetic', 'generated', or a file or folder of the user's
            CoNLL-U or word/TAG text.   vocab_size: words kept besides ``<unk>``.
        max_train_tokens: keep only the first N training tokens (quick runs); the vocabulary is
            built from what is kept.
        vocab: a vocabulary to use instead of building one (a checkpoint's).
        seed: the generated languages' seed.
        max_distance, fixed_distance: the synthetic language's D (``generate_planted``).
        tag_column: 'upos' or 'xpos', the tag a CoNLL-U corpus is read with.
    """
    splits = {s: ([], [], []) for s in SPLITS}
    position_in_genre = collections.Counter()
    for genre, sents, split in read_documents(name, seed, max_distance, fixed_distance, tag_column):
        if split is None:
            split = split_of(position_in_genre[genre])
            position_in_genre[genre] += 1
        words, tags, feats = splits[split]
        for sent in sents:
            for w, t, f in sent:
                words.append(w.lower())
                tags.append(normalize_tag(t, name))
                feats.append(f)
            words.append(EOS)
            tags.append(EOS)
            feats.append(NO_FEATS)
    empty = [s for s, (words, _, _) in splits.items() if not words]
    if empty:
        raise CorpusError(f"corpus {name} has no {' and no '.join(empty)} text: give it at least "
                          f"{6 * SENTENCES_PER_DOCUMENT} sentences, or files named *-train*, *-dev* "
                          f"and *-test*")
    if max_train_tokens is not None:
        splits["train"] = tuple(column[:max_train_tokens] for column in splits["train"])
    vocab = list(vocab) if vocab is not None else build_vocab(splits["train"][0], vocab_size)
    scheme = SCHEME_OF_CORPUS.get(name) or guess_scheme(splits["train"][1])
    corpus = Corpus(name=name, vocab=vocab, scheme=scheme)
    index = corpus.word_to_id
    unk = index[UNK]
    for split, (words, tags, feats) in splits.items():
        corpus.words[split] = words
        corpus.tags[split] = np.asarray(tags)
        corpus.feats[split] = np.asarray(feats)
        corpus.ids[split] = np.fromiter((index.get(w, unk) for w in words), np.int64, len(words))
    return corpus


CORPUS_OPTIONS = {"max_distance": 15, "fixed_distance": False, "tag_column": "upos"}


def corpus_settings(settings: dict) -> dict:
    """The arguments of ``load_corpus`` in a train.py run's settings (the command line's or a
    checkpoint's; checkpoints older than an option get its default)."""
    return {"name": settings["corpus"], "vocab_size": settings["vocab_size"],
            "max_train_tokens": settings["max_train_tokens"], "seed": settings["seed"],
            **{key: settings.get(key, default) for key, default in CORPUS_OPTIONS.items()}}


def batchify(ids, batch_size: int):
    """Cut a token sequence into ``batch_size`` contiguous streams: (B, N // B)."""
    n = len(ids) // batch_size
    if n < 2:
        raise ValueError(f"{len(ids)} tokens are too few for {batch_size} streams")
    return np.asarray(ids[:n * batch_size]).reshape(batch_size, n)


def majority_analyses(corpus: Corpus, split: str = "train", min_count: int = 1):
    """Each vocabulary word's majority tag in ``split`` and, among its tokens with that tag, the
    majority features: (tag, feats), or None for <unk>, <eos> and words seen fewer than
    ``min_count`` times. Ties go to the alphabetically first."""
    counts = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))
    for word_id, tag, feats in zip(corpus.ids[split], corpus.tags[split], corpus.feats[split]):
        counts[int(word_id)][tag][feats] += 1            # word -> tag -> features -> count

    def majority(counter):
        return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[0][0]

    skip = {corpus.word_to_id[UNK], corpus.word_to_id.get(EOS)}
    result = [None] * len(corpus.vocab)
    for word_id, by_tag in counts.items():
        tag_counts = collections.Counter({tag: sum(f.values()) for tag, f in by_tag.items()})
        if word_id not in skip and sum(tag_counts.values()) >= min_count:
            tag = majority(tag_counts)
            result[word_id] = (tag, majority(by_tag[tag]))
    return result
