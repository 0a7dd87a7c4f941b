"""Every corpus the scripts accept, behind one call: Brown and the Treebank sample (corpus.py),
the two generated languages (languages.py) and the user's own files (own_text.py)."""
from __future__ import annotations

import hashlib
import os
import sys

import corpus
from corpus import CORPORA, SENTENCES_PER_DOCUMENT
from tool.languages import generate_documents, generate_planted
from tool.own_text import guess_scheme, read_tagged_files

CORPUS_OPTIONS = {"max_distance": 15, "fixed_distance": False, "tag_column": "upos"}


def corpus_name(text: str) -> str:
    """--corpus: a built-in corpus, or the user's file or folder as an absolute path (found from
    anywhere)."""
    return text if text in CORPORA else os.path.abspath(text)


def load_corpus(name: str = "brown", vocab_size: int = 10000, max_train_tokens: int | None = None,
                vocab=None, seed: int = 0, max_distance: int = 15, fixed_distance: bool = False,
                tag_column: str = "upos") -> corpus.Corpus:
    """``corpus.load_corpus`` for any corpus name.

    Args:
        name: 'brown', 'treebank', 'synthetic', 'generated', or a file or folder of the user's
            CoNLL-U or word/TAG text.   vocab_size, max_train_tokens, vocab: as corpus.load_corpus.
        seed: the generated languages' seed.
        max_distance, fixed_distance: the synthetic language's D (``generate_planted``).
        tag_column: 'upos' or 'xpos', the tag a CoNLL-U corpus is read with.
    """
    documents = None
    if name == "generated":
        documents = [("generated", sents, None) for sents in generate_documents(seed=seed)]
    elif name == "synthetic":
        sents = generate_planted(max_distance=max_distance, fixed_distance=fixed_distance, seed=seed)
        documents = [("synthetic", sents[i:i + SENTENCES_PER_DOCUMENT], None)
                     for i in range(0, len(sents), SENTENCES_PER_DOCUMENT)]
    elif name not in CORPORA:
        documents = read_tagged_files(name, tag_column)
    else:
        print(f"reading the {name} corpus through NLTK ...", file=sys.stderr)   # about 20 s
    data = corpus.load_corpus(name, vocab_size, max_train_tokens, vocab, documents)
    if name not in CORPORA:
        data.scheme = guess_scheme(data.tags["train"])
    return data


def corpus_digest(data: corpus.Corpus) -> str:
    """A hash of the corpus's words, tags and features in every split: a checkpoint records it, so
    that a text re-tagged or edited after training is noticed."""
    digest = hashlib.sha256()
    for split in corpus.SPLITS:
        for column in (data.words[split], data.tags[split], data.feats[split]):
            digest.update("\x1f".join(map(str, column)).encode())
            digest.update(b"\x1e")
    return digest.hexdigest()


def corpus_settings(settings: dict) -> dict:
    """The arguments of ``load_corpus`` in a train.py run's settings (the command line's or a
    checkpoint's; a checkpoint without one of CORPUS_OPTIONS gets its default)."""
    return {"name": settings["corpus"], "vocab_size": settings["vocab_size"],
            "max_train_tokens": settings["max_train_tokens"], "seed": settings["seed"],
            **{key: settings.get(key, default) for key, default in CORPUS_OPTIONS.items()}}
