"""Counterfactual copies of the student's training pairs: the answer changed in the passages, the rationale and the label.

A student trained on passages that always agree with what it can memorise learns to recall, not to
read (Longpre et al., EMNLP 2021, "Entity-Based Knowledge Conflicts in Question Answering"). A
counterfactual copy of a multiple-choice pair swaps the gold option's text with another option's
text wherever either occurs in the input's passages and in the rationale, and relabels the
answer, so the only way to be right on both the pair and its copy is to read the passage::

    copies = counterfactuals(example, rationale, passages, copies=1, key="q12#0")
    # [("B", "The velomar eats mostly fish.", [Passage(text="... eats mostly fish ..."), ...])]

Pairs whose gold option text is in none of the passages get no copy (the swap would contradict
knowledge the input does not show: a two-hop answer is derived, not quoted).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from kard_chain.records import Example, Passage
from kard_chain.student.format import as_passage


def _whole_words(*phrases: str) -> re.Pattern:
    """Any of ``phrases`` as whole words, case-insensitive, the longest first."""
    alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(r"(?<!\w)(" + alternatives + r")(?!\w)", re.IGNORECASE)


def swap_phrases(text: str, a: str, b: str) -> str:
    """``text`` with every whole-word ``a`` written ``b`` and every ``b`` written ``a`` (case-insensitive; a capital
    first letter is kept)."""
    if not a or not b or a.lower() == b.lower():
        return text
    swap = {a.lower(): b, b.lower(): a}

    def other(match: re.Match) -> str:
        found, new = match.group(0), swap[match.group(0).lower()]
        return new[:1].upper() + new[1:] if found[:1].isupper() else new

    return _whole_words(a, b).sub(other, text)


def counterfactuals(example: Example, rationale: str, docs: Sequence[Any], copies: int, key: str) -> list[tuple[str, str, list[Passage]]]:
    """Up to ``copies`` (answer, rationale, passages) triples, each with the gold option swapped for another option
    (drawn without repeats, seeded by ``key``); none when the example has no options or no passage quotes its
    gold option."""
    if copies < 1 or not example.options or example.answer not in example.options:
        return []
    passages = [as_passage(d) for d in docs]
    gold = example.options[example.answer]
    if not any(_whole_words(gold).search(p.title + " " + p.text) for p in passages):
        return []
    others = [letter for letter, text in example.options.items() if letter != example.answer and text.lower() != gold.lower()]
    out = []
    for letter in random.Random(key).sample(others, min(copies, len(others))):
        new = example.options[letter]
        swapped = [p.model_copy(update={"title": swap_phrases(p.title, gold, new), "text": swap_phrases(p.text, gold, new)})
                   for p in passages]
        out.append((letter, swap_phrases(rationale, gold, new), swapped))
    return out
