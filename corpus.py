"""Corpora with gold part-of-speech tags, the vocabulary, and the word classes of the analysis.

Everything the two scripts need to turn tagged text into word ids and class labels:

  * ``load_corpus``: Brown (NLTK, gold Brown tags read as the Penn Treebank would tag them) or
    the NLTK Penn Treebank sample (the paper's tagset), or documents read elsewhere (the tool's
    generated languages and the user's own files: tool/corpora.py); lower-cased, ``<eos>`` after
    every sentence, tags and CoNLL-U features aligned to every token, split by document
    (80/10/10, every genre in every split) unless file names say the split.
  * the vocabulary: the ``vocab_size`` most frequent training words plus ``<unk>``.
  * class schemes: which tags (and features) form the POS classes of Table 1 and the two sides of
    each property of Figure 2; built in for every kind of corpus, or read from a small file.

Read after lstm_memory.py, word2vec.py, train.py and analyze.py: it holds the paper's data and
classes. It imports nothing of the project; the tool's readers (tool/) import it.
"""
from __future__ import annotations

import collections
import contextlib
import io
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import numpy as np

EOS, UNK = "<eos>", "<unk>"
SPLITS = ("train", "valid", "test")
CORPORA = ("brown", "treebank", "synthetic", "generated")   # or the path of the user's own files
NO_FEATS = "_"                      # CoNLL-U's empty feature column
SENTENCES_PER_DOCUMENT = 50         # the user's files and the synthetic language: one "document"
MIN_WORD_COUNT = 5   # word types rarer than this in training are in no class (CBOW's min count)


class CorpusError(Exception):
    """A corpus (or class file) that cannot be used, with a message that says what to do."""


def clip(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut (for error messages)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def quote(text: str) -> str:
    """``text`` clipped and quoted, as an error message shows a token, tag or line."""
    return repr(clip(text))


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
# TAGs are shell patterns (VB* matches VBD, [*] matches only the tag "*": a literal star, as in the
# shell); !PATTERN excludes; features must all be present.
# A token is in the first pos class that matches it. Lines starting with # are comments.

SCHEMES = {
    "brown": """
# Brown tags read as the Penn Treebank (the paper's tagset) would tag them; -TL/-HL/-NC suffixes
# dropped (a common noun in a title, and a weekday, tagged as a proper noun), the preposition "to" read as TO (in no class); contractions (PPS+BEZ he's, DOD* didn't)
# are two PTB tokens and in no class. [*] is Brown's tag "*" (not), a literal star.
pos pronouns = PP* !*+*
pos nouns = NN NNS NP NPS NR NRS PN NN$ NNS$ NP$ NPS$ NR$ PN$ !*+*
pos verbs = VB* BE* HV* DO* !*+* !*[*]
pos adjectives = JJ* AP OD !*+*
pos adverbs = RB* RN QL QLP [*] !*+*
pos conj./prep. = CC CS IN
class sg = NN NP NR PN NN$ NP$ NR$ PN$
class pl = NNS NPS NRS NNS$ NPS$
class common = NN NNS NR NRS PN NN$ NNS$ NR$ PN$
class proper = NP NPS NP$ NPS$
# disjoint sides, for --property sg-common:pl-common --property sg-common:sg-proper
class sg-common = NN NR PN NN$ NR$ PN$
class pl-common = NNS NRS NNS$
class sg-proper = NP NP$
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
class sg-common = NN
class pl-common = NNS
class sg-proper = NNP
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
# Table 2's "nouns" row classifies nouns by the paper's four Penn Treebank tags. Brown's other noun
# tags read as the PTB tag of the same number and (as the brown scheme's classes have it) type:
# possessives as their base tag, NR/NRS (home, west) and PN (anyone) as common nouns (weekdays and
# nouns in titles are proper already: normalize_tag).
PTB_NOUN_TAG = {"NN$": "NN", "NR": "NN", "NR$": "NN", "PN": "NN", "PN$": "NN", "NNS$": "NNS",
                "NRS": "NNS", "NP": "NNP", "NP$": "NNP", "NPS": "NNPS", "NPS$": "NNPS"}
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
    for number, line in enumerate(text.split("\n"), 1):
        line, where = line.strip(), f"{source}:{number}"
        if not line or line.startswith("#"):
            continue
        kind, _, rest = line.partition(" ")
        name, equals, body = (part.strip() for part in rest.partition("="))
        if kind not in ("pos", "class", "property") or not equals or not name or " " in name:
            raise CorpusError(f"{where}: expected 'pos NAME = TAGS', 'class NAME = TAGS' or "
                              f"'property NAME = CLASS CLASS', found {quote(line)}")
        if name in scheme.classes or name in scheme.properties:
            raise CorpusError(f"{where}: {quote(name)} is defined twice")
        if kind == "property":
            sides = body.split()
            if len(sides) != 2:
                raise CorpusError(f"{where}: property {quote(name)} needs two classes, "
                                  f"found {quote(body)}")
            scheme.properties[name] = tuple(property_side(scheme, side, where) for side in sides)
            continue
        patterns, _, feats = body.partition(";")
        tags = tuple(p for p in patterns.split() if not p.startswith("!"))
        if not tags:
            raise CorpusError(f"{where}: class {quote(name)} names no tag")
        if any(f.count("=") != 1 for f in feats.split()):
            raise CorpusError(f"{where}: features are written Feature=Value, "
                              f"found {quote(feats.strip())}")
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
        raise CorpusError(f"{where}: {quote(side)} is neither a class of {scheme.source} nor a "
                          f"Feature=Value")
    return WordClass(side, ("*",), (), frozenset([side]), where)


def builtin_scheme(name: str) -> Scheme:
    """The built-in scheme ``name``, a key of SCHEMES ('brown', 'treebank', 'upos', 'synthetic')."""
    return parse_scheme(SCHEMES[name], f"built-in {name} classes")


def check_tags_exist(scheme: Scheme, tags) -> None:
    """A class file must not name a tag the corpus lacks (a typo would silently empty a class)."""
    present = set(tags)
    for word_class in scheme.classes.values():
        for pattern in word_class.tags:
            if not any(fnmatchcase(tag, pattern) for tag in present):
                shown = ", ".join(clip(tag) for tag in sorted(present - {EOS})[:30])
                raise CorpusError(f"{word_class.where}: tag {quote(pattern)} of class "
                                  f"{quote(word_class.name)} "
                                  f"is not in the corpus (its tags: {shown})")


WEEKDAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
PROPER_NOUN_TAG = {"NN": "NP", "NR": "NP", "NN$": "NP$", "NR$": "NP$", "NNS": "NPS", "NRS": "NPS",
                   "NNS$": "NPS$"}      # a common noun's Brown tag -> the proper noun tag of its number


def is_weekday(word: str) -> bool:
    """Sunday, Sundays, Sunday's (any case)."""
    base = word.lower().removesuffix("'s").removesuffix("'")
    return base in WEEKDAYS or base.removesuffix("s") in WEEKDAYS


def normalize_tag(word: str, tag: str, corpus: str) -> str:
    """A token's tag as the class schemes read it: for Brown, as the Penn Treebank would tag it.

    Args:
        word: the token (any case).   tag: its gold tag.   corpus: the corpus name.
    Brown and the generated language: the title/headline/cited-word suffixes -TL, -HL, -NC are
    dropped (``NN-HL`` -> ``NN``), but a common noun in a title is part of a name, a proper noun
    of its number (``NN-TL`` -> ``NP``: Department, University; PTB's NNP). Brown only: weekdays
    (``NR`` sunday, ``NRS`` sundays) are proper nouns, as in PTB; the preposition "to" (``IN``) is
    read as PTB tags it, ``TO`` (in no class, like the infinitive marker Brown already tags TO).
    """
    if corpus in ("brown", "generated"):
        parts = tag.split("-")
        kept = "-".join(p for p in parts if p not in ("TL", "HL", "NC")) or tag
        if "TL" in parts[1:]:
            kept = PROPER_NOUN_TAG.get(kept, kept)
        tag = kept
    if corpus == "brown" and tag in ("NR", "NRS", "NR$") and is_weekday(word):
        tag = PROPER_NOUN_TAG[tag]
    if corpus == "brown" and tag == "IN" and word.lower() == "to":
        tag = "TO"
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
        noise = io.StringIO()                # the downloader's own messages, replaced by ours
        with contextlib.redirect_stdout(noise), contextlib.redirect_stderr(noise):
            downloaded = nltk.download(name, quiet=True, raise_on_error=False, print_error_to=noise)
        if not downloaded:
            raise CorpusError(
                f"the {name} corpus is not installed and could not be downloaded: run "
                f"`python -m nltk.downloader {name}` when online, or set NLTK_DATA to a folder "
                f"that holds corpora/{name}.zip") from None
    return getattr(__import__("nltk.corpus", fromlist=[name]), name)


def split_of(index_in_genre: int) -> str:
    """The split of the document that comes ``index_in_genre``-th (0-based) in its genre's file
    order: 4 mod 10 -> valid, 5 mod 10 -> test, else train (80/10/10, every genre in every split)."""
    return {4: "valid", 5: "test"}.get(index_in_genre % 10, "train")


def read_documents(name: str):
    """Tagged documents of ``brown`` or ``treebank`` (NLTK): a list of (genre, [sentence of
    (word, tag, feats)], split), split None (``split_of`` decides). The Treebank's ``-NONE-``
    traces are dropped."""
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
                vocab=None, documents=None) -> Corpus:
    """Read, tokenise, split and index a corpus.

    Args:
        name: 'brown' or 'treebank' (read through NLTK), or the name of ``documents``.
        vocab_size: words kept besides ``<unk>``.
        max_train_tokens: keep only the first N training tokens (quick runs); the vocabulary is
            built from what is kept.
        vocab: a vocabulary to use instead of building one (a checkpoint's).
        documents: (genre, sentences, split) triples as ``read_documents`` gives them, read
            elsewhere (tool/corpora.py); None reads ``name`` through NLTK.
    Returns:
        the Corpus; its ``scheme`` is the built-in class scheme of ``name`` (None for another
        name: the caller decides).
    """
    splits = {s: ([], [], []) for s in SPLITS}
    position_in_genre = collections.Counter()
    for genre, sents, split in documents if documents is not None else read_documents(name):
        if split is None:
            split = split_of(position_in_genre[genre])
            position_in_genre[genre] += 1
        words, tags, feats = splits[split]
        for sent in sents:
            for w, t, f in sent:
                words.append(w.lower())
                tags.append(normalize_tag(w, t, name))
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
    corpus = Corpus(name=name, vocab=vocab, scheme=SCHEME_OF_CORPUS.get(name))
    index = corpus.word_to_id
    unk = index[UNK]
    for split, (words, tags, feats) in splits.items():
        corpus.words[split] = words
        corpus.tags[split] = np.asarray(tags)
        corpus.feats[split] = np.asarray(feats)
        corpus.ids[split] = np.fromiter((index.get(w, unk) for w in words), np.int64, len(words))
    return corpus


def word_classes(data, scheme, min_count=MIN_WORD_COUNT):
    """Each vocabulary word's classes for Table 2 and eq. (2), from its majority tag in the training
    split (with that tag's majority features); <unk>, <eos> and words seen fewer than
    ``min_count`` times there are in no class.

    Returns {"tags", "noun_tags", "pos", and one key per property}: one list over the vocabulary
    each (a tag or class name, or None); "noun_tags" is a noun's tag read as one of the paper's
    four (PTB_NOUN_TAG), for Table 2's "nouns" row. A word that fits both sides of a
    property is in the first.
    """
    analyses = majority_analyses(data, "train", min_count=min_count)
    names = list(scheme.pos)
    index = [-1 if a is None else scheme.pos_index(*a) for a in analyses]
    pos = [names[i] if i >= 0 else None for i in index]
    classes = {"tags": [None if a is None else a[0] for a in analyses], "pos": pos,
               "noun_tags": [PTB_NOUN_TAG.get(a[0], a[0]) if p == "nouns" else None
                             for a, p in zip(analyses, pos)]}
    for prop, sides in scheme.properties.items():
        classes[prop] = [None if a is None else next((c.name for c in sides if c.matches(*a)), None)
                         for a in analyses]
    return classes


def frequency_bins(vocab, edges):
    """Names and (V,) bin ids of the frequency-rank bins (the vocabulary is ranked by training
    frequency); <unk> and <eos> are in no bin (-1)."""
    n_words = len(vocab) - 1                                    # <unk> is last
    edges = [0] + [e for e in edges if e < n_words] + [n_words]
    names = [f"rank {lo + 1}-{hi}" for lo, hi in zip(edges, edges[1:])]
    bins = np.searchsorted(edges, np.arange(len(vocab)), side="right") - 1
    bins[[i for i, w in enumerate(vocab) if w in (UNK, EOS)]] = -1
    return names, bins


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
