"""The reranker's training targets: which BM25 queries score a candidate set, and the distribution they make.

KARD's target is ``softmax(BM25(rationale, d) / tau)`` over the candidates. A rationale usually states several
facts, each found in its own passage, and BM25 over the whole rationale favours the passage of its longest fact.
``sentences`` scores the candidates with each sentence of the rationale on its own and takes the mean of their
softmaxes (several rationales per question, as the paper's teacher gives); ``question+sentences`` prefixes each
sentence with the question. The closing "So the answer is ..." adds no knowledge and is left out. The scorer is
BM25 (KARD's), or ``bm25+dense``: the sum of BM25's and a sentence encoder's cosine, each standardised over the
candidates, so that a fact worded otherwise than its passage still finds it::

    queries = target_queries("Is a zorb wet?", "Zorbs live in marshes. Marshes are wet. So the answer is yes.", "sentences")
    # ["Zorbs live in marshes.", "Marshes are wet."]
    log_p = log_mixture([[1.0, 3.0], [2.0, 0.5]], temperature=1.0)   # one log-probability per candidate
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal

TargetQueries = Literal["rationale", "sentences", "question+sentences"]
TargetScorer = Literal["bm25", "bm25+dense"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_ANSWER = re.compile(r"^(so|thus|therefore),?\s+the answer is\b", re.IGNORECASE)


def rationale_sentences(rationale: str) -> list[str]:
    """The rationale's sentences without its closing answer sentence (the whole rationale where it has no other)."""
    parts = [p.strip() for p in _SENTENCE_END.split(rationale) if p.strip()]
    facts = [p for p in parts if not _ANSWER.match(p)]
    return facts or [rationale]


def target_queries(question: str, rationale: str, kind: TargetQueries) -> list[str]:
    """The BM25 queries whose softmaxes, averaged, are the target of one candidate set."""
    if kind == "rationale":
        return [rationale]
    sentences = rationale_sentences(rationale)
    if kind == "sentences":
        return sentences
    if kind == "question+sentences":
        return [f"{question} {s}" for s in sentences]
    raise ValueError(f"target_queries: {kind!r} is not one of rationale, sentences, question+sentences")


def log_mixture(scores: Sequence[Sequence[float]], temperature: float) -> list[float]:
    """``log`` of the mean over queries of ``softmax(scores[q] / temperature)``: one finite log-probability per
    candidate, however far below the best it scores (log-sum-exp over the queries)."""
    if not scores or not scores[0]:
        raise ValueError("log_mixture: no queries or no candidates")
    logs = []
    for row in scores:
        top = max(row) / temperature
        norm = top + math.log(sum(math.exp(s / temperature - top) for s in row))
        logs.append([s / temperature - norm for s in row])
    out = []
    for column in zip(*logs):
        top = max(column)
        out.append(top + math.log(sum(math.exp(x - top) for x in column) / len(column)))
    return out

