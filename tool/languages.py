"""Two generated languages with gold tags: one whose memory is known, and a toy English for the tests.

  * ``generate_planted`` (``--corpus synthetic``): number agreement over 1..D words and a distractor,
    so that what an LM must remember, and for how long, is known; ``planted_perplexity`` is the
    lowest perplexity an LM can reach on it.
  * ``generate_documents`` (``--corpus generated``): a tiny English-like grammar with Brown tags and
    subject-verb agreement, small enough for the tests to train an LM on in a second.

``tool.corpora.load_corpus`` reads both like any other corpus. They serve the tests and the
planted-memory check, not the paper's set-up.
"""
from __future__ import annotations

import math

import numpy as np

from corpus import NO_FEATS


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
