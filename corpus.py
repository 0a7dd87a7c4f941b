"""Corpora with gold part-of-speech tags, the vocabulary, and the word classes of the paper.

Everything the two scripts need to turn tagged text into word ids and class labels:

  * ``load_corpus``: Brown (NLTK, gold Brown tags), the NLTK Penn Treebank sample (the paper's
    tagset) or a small generated corpus for tests; lower-cased, ``<eos>`` after every sentence,
    the tags kept aligned to every token, split by document (80/10/10, every genre in every split).
  * the vocabulary: the ``vocab_size`` most frequent training words plus ``<unk>``.
  * the paper's classes: six coarse POS classes (Table 1), noun number and noun type (Table 2,
    Figure 2), and each vocabulary word's majority tag (Table 2's word classes).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

EOS, UNK = "<eos>", "<unk>"
SPLITS = ("train", "valid", "test")
CORPORA = ("brown", "treebank", "generated")


class CorpusError(Exception):
    """A corpus that cannot be read, with a message that says what to do."""


# ----------------------------------------------------------------------------------------------
# The paper's word classes, for the Brown and the Penn Treebank tagsets
# ----------------------------------------------------------------------------------------------

COARSE_CLASSES = ["pronouns", "nouns", "verbs", "adjectives", "adverbs", "conj./prep."]
NOUN_TAGS = {  # noun tag -> (number, type); possessives (NN$, NNP$...) are kept apart
    "brown": {"NN": ("sg", "common"), "NNS": ("pl", "common"),
              "NP": ("sg", "proper"), "NPS": ("pl", "proper")},
    "treebank": {"NN": ("sg", "common"), "NNS": ("pl", "common"),
                 "NNP": ("sg", "proper"), "NNPS": ("pl", "proper")},
}
NOUN_TAGS["generated"] = NOUN_TAGS["brown"]


def normalize_tag(tag: str, corpus: str) -> str:
    """Brown: drop the title/headline/cited-word suffixes -TL, -HL, -NC (``NN-TL`` -> ``NN``)."""
    if corpus in ("brown", "generated"):
        parts = [p for p in tag.split("-") if p not in ("TL", "HL", "NC")]
        tag = "-".join(parts) if parts else tag
    return tag


def coarse_class(tag: str, corpus: str):
    """Index into COARSE_CLASSES for a normalized tag, or None (determiners, punctuation, ...).

    Brown: pronouns PP* (but not PP$$, "mine": no tag ending in $$ is in a class); nouns NN, NNS,
    NP, NPS; verbs VB* and the BE*/HV*/DO* forms; adjectives JJ*;
    adverbs RB*; conj./prep. CC, CS, IN. Treebank: PRP, PRP$; NN, NNS, NNP, NNPS; VB*; JJ*; RB*;
    CC, IN. Compound tags (Brown's ``PPS+BEZ``) are in no class.
    """
    if "+" in tag:
        return None
    if tag in NOUN_TAGS.get(corpus, NOUN_TAGS["brown"]):
        return 1
    if corpus == "treebank":
        rules = [("PRP",), None, ("VB",), ("JJ",), ("RB",), None]
        conj = ("CC", "IN")
    else:
        rules = [("PP",), None, ("VB", "BE", "HV", "DO"), ("JJ",), ("RB",), None]
        conj = ("CC", "CS", "IN")
    if tag in conj:
        return 5
    for index, prefixes in enumerate(rules):
        if prefixes and tag.startswith(prefixes) and not tag.endswith("$$"):
            return index
    return None


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


def read_documents(name: str, n_docs: int = 60, seed: int = 0):
    """Tagged documents of a corpus: a list of (genre, [sentence of (word, tag)]).

    The Treebank's ``-NONE-`` traces are dropped; the generated corpus has one genre.
    """
    if name == "generated":
        return generate_documents(n_docs=n_docs, seed=seed)
    if name not in ("brown", "treebank"):
        raise CorpusError(f"unknown corpus {name!r}: choose one of {', '.join(CORPORA)}")
    reader = _nltk_reader(name)
    docs = []
    if name == "brown":
        for genre in reader.categories():
            for fileid in reader.fileids(categories=genre):
                docs.append((genre, list(reader.tagged_sents(fileids=fileid))))
    else:
        for fileid in reader.fileids():
            sents = [[(w, t) for w, t in s if t != "-NONE-"] for s in reader.tagged_sents(fileid)]
            docs.append(("wsj", [s for s in sents if s]))
    return docs


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
    """Documents of a tiny English-like language with Brown tags: subject, agreeing verb, object.

    Subject number (singular NN/NP/PPS vs plural NNS/PPSS) decides the verb form (VBZ vs VBP), so a
    language model must carry it across the optional adjective and adverb in between.
    """
    rng = np.random.default_rng(seed)

    def word(tag):
        options = LEXICON[tag]
        return (options[rng.integers(len(options))], tag)

    def noun_phrase(plural):
        kind = rng.integers(3)
        if kind == 0:
            return [word("PPSS" if plural else "PPS")]
        if kind == 1 and not plural:
            return [word("NP")]
        phrase = [word("AT")] if not plural or rng.random() < 0.5 else []
        phrase = [("the", "AT")] if plural and phrase else phrase
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
            sents.append(sent + [(".", ".")])
        docs.append(("generated", sents))
    return docs


# ----------------------------------------------------------------------------------------------
# Word ids, tags and the vocabulary
# ----------------------------------------------------------------------------------------------

@dataclass
class Corpus:
    """A tokenised, tagged corpus: per split, word ids (N,) and tags (N,) aligned token by token."""
    name: str
    vocab: list
    words: dict = field(default_factory=dict)   # split -> list of lower-cased words (N,)
    tags: dict = field(default_factory=dict)    # split -> np.array of normalized tags (N,)
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
                vocab=None, seed: int = 0) -> Corpus:
    """Read, tokenise, split and index a corpus.

    Args:
        name: 'brown', 'treebank' or 'generated'.   vocab_size: words kept besides ``<unk>``.
        max_train_tokens: keep only the first N training tokens (quick runs); the vocabulary is
            built from what is kept.
        vocab: a vocabulary to use instead of building one (a checkpoint's).
        seed: only for the generated corpus.
    """
    splits = {s: ([], []) for s in SPLITS}
    position_in_genre = collections.Counter()
    for genre, sents in read_documents(name, seed=seed):
        split = split_of(position_in_genre[genre])
        position_in_genre[genre] += 1
        words, tags = splits[split]
        for sent in sents:
            for w, t in sent:
                words.append(w.lower())
                tags.append(normalize_tag(t, name))
            words.append(EOS)
            tags.append(EOS)
    if max_train_tokens is not None:
        words, tags = splits["train"]
        splits["train"] = (words[:max_train_tokens], tags[:max_train_tokens])
    vocab = list(vocab) if vocab is not None else build_vocab(splits["train"][0], vocab_size)
    corpus = Corpus(name=name, vocab=vocab)
    index = corpus.word_to_id
    unk = index[UNK]
    for split, (words, tags) in splits.items():
        corpus.words[split] = words
        corpus.tags[split] = np.asarray(tags)
        corpus.ids[split] = np.fromiter((index.get(w, unk) for w in words), np.int64, len(words))
    return corpus


def batchify(ids, batch_size: int):
    """Cut a token sequence into ``batch_size`` contiguous streams: (B, N // B)."""
    n = len(ids) // batch_size
    if n < 2:
        raise ValueError(f"{len(ids)} tokens are too few for {batch_size} streams")
    return np.asarray(ids[:n * batch_size]).reshape(batch_size, n)


def majority_tags(corpus: Corpus, split: str = "train", min_count: int = 1):
    """Each vocabulary word's most frequent tag in ``split`` (None for <unk> and unseen words)."""
    counts = collections.defaultdict(collections.Counter)
    for word_id, tag in zip(corpus.ids[split], corpus.tags[split]):
        counts[int(word_id)][tag] += 1
    unk = len(corpus.vocab) - 1
    result = [None] * len(corpus.vocab)
    for word_id, tag_counts in counts.items():
        if word_id != unk and sum(tag_counts.values()) >= min_count:
            result[word_id] = sorted(tag_counts.items(), key=lambda item: (-item[1], item[0]))[0][0]
    return result
