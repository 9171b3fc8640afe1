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

A yes/no question has no options to swap, but a templated one asks for a value that other training
questions of the same template ask for too ("Is the velomar red?", "Is the dolva blue?"): the value
slot (:func:`value_slots`). A yes/no copy swaps the value the rationale states in the passages and
the rationale (and, for a copy whose answer stays, in the question too), so that the answer depends
on comparing the question's value with the one read, not on a prior::

    slots = value_slots([e.question for e in train])
    copies = yes_no_counterfactuals(example, rationale, passages, copies=2, key="q7#0", slots=slots)
    # [Counterfactual(question="Is the velomar red?", answer="no", rationale="The velomar has blue fur.", ...), ...]
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

from kard_chain.answers import strip_final_answer
from kard_chain.bm25.tokenizer import ENGLISH_STOPWORDS
from kard_chain.records import Example, Passage
from kard_chain.student.format import as_passage


class Counterfactual(NamedTuple):
    """One counterfactual copy of a training pair."""

    question: str
    answer: str
    rationale: str
    passages: list[Passage]


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


def _swapped(passages: Sequence[Passage], a: str, b: str) -> list[Passage]:
    return [p.model_copy(update={"title": swap_phrases(p.title, a, b), "text": swap_phrases(p.text, a, b)}) for p in passages]


def _mentions(phrase: str, *texts: str) -> bool:
    return any(_whole_words(phrase).search(t) for t in texts)


def counterfactuals(example: Example, rationale: str, docs: Sequence[Any], copies: int, key: str) -> list[Counterfactual]:
    """Up to ``copies`` copies, each with the gold option swapped for another option (drawn without repeats, seeded by
    ``key``); none when the example has no options or no passage quotes its gold option."""
    if copies < 1 or not example.options or example.answer not in example.options:
        return []
    passages = [as_passage(d) for d in docs]
    gold = example.options[example.answer]
    if not _mentions(gold, *(p.title + " " + p.text for p in passages)):
        return []
    others = [letter for letter, text in example.options.items() if letter != example.answer and text.lower() != gold.lower()]
    out = []
    for letter in random.Random(key).sample(others, min(copies, len(others))):
        new = example.options[letter]
        out.append(Counterfactual(example.question, letter, swap_phrases(rationale, gold, new), _swapped(passages, gold, new)))
    return out


_WORD = re.compile(r"\w+")
_YES_NO = ("yes", "no")


def value_slots(questions: Sequence[str], min_count: int = 3, min_questions: int = 10) -> dict[str, dict[str, frozenset[str]]]:
    """Per question, its value words and the words that fill the same slot in other questions.

    A word that occurs in at least ``min_count`` of ``questions`` is a template word or a value; rarer words (names)
    count as a wildcard. Questions share a slot when they are equal but for that word (and their wildcards); a slot
    that at least ``min_questions`` questions share, with two or more fillers and none of them a stop word ("is" /
    "was"), is a value slot. Returns ``{question: {value: fillers}}`` (lower case) for the questions that have one:
    templated questions; free-form ones (StrategyQA's) rarely share a template."""
    words = [[w.lower() for w in _WORD.findall(q)] for q in questions]
    df = Counter(w for ws in words for w in set(ws))
    skeletons = [tuple(w if df[w] >= min_count else "*" for w in ws) for ws in words]
    fillers: dict[tuple, set[str]] = defaultdict(set)
    shared: Counter = Counter()
    for sk in skeletons:
        for i, template in _templates(sk):
            fillers[template].add(sk[i])
            shared[template] += 1
    out: dict[str, dict[str, frozenset[str]]] = {}
    for q, sk in zip(questions, skeletons):
        slots = {sk[i]: frozenset(fillers[t]) for i, t in _templates(sk)
                 if shared[t] >= min_questions and len(fillers[t]) >= 2 and not fillers[t] & ENGLISH_STOPWORDS}
        if slots:
            out[q] = slots
    return out


def _templates(skeleton: tuple[str, ...]) -> list[tuple[int, tuple[str, ...]]]:
    """Each word's position in ``skeleton`` and the skeleton with that word as the slot ``_``."""
    return [(i, skeleton[:i] + ("_",) + skeleton[i + 1 :]) for i, w in enumerate(skeleton) if w != "*"]


def yes_no_counterfactuals(example: Example, rationale: str, docs: Sequence[Any], copies: int, key: str,
                           slots: dict[str, dict[str, frozenset[str]]]) -> list[Counterfactual]:
    """Up to ``copies`` copies of a yes/no pair whose question has a value slot (:func:`value_slots`) whose value its
    rationale and passages state: the first with the answer flipped (the stated value swapped, in passages and
    rationale, for another filler, or for the asked one), the second with the answer kept and the value renamed (a
    yes: in question, passages and rationale; a no: the stated value for a third filler). Drawn seeded by ``key``;
    the copies' rationales end before their answer."""
    if copies < 1 or example.options or example.answer not in _YES_NO or example.question not in slots:
        return []
    passages = [as_passage(d) for d in docs]
    texts = [p.title + " " + p.text for p in passages]
    rationale = strip_final_answer(rationale)  # its "So the answer is yes" would contradict a flipped copy
    rng = random.Random(key)
    for asked, fillers in slots[example.question].items():
        stated = [f for f in sorted(fillers) if _mentions(f, rationale) and _mentions(f, *texts)]
        if example.answer == "yes":
            if asked not in stated:
                continue
            others = [f for f in sorted(fillers) if f != asked]
            flip, rename = rng.sample(others, 2) if len(others) >= 2 else (others[0], None)
            out = [Counterfactual(example.question, "no", swap_phrases(rationale, asked, flip), _swapped(passages, asked, flip))]
            if rename is not None:
                out.append(Counterfactual(swap_phrases(example.question, asked, rename), "yes",
                                          swap_phrases(rationale, asked, rename), _swapped(passages, asked, rename)))
        else:
            values = [f for f in stated if f != asked]
            if len(values) != 1:  # the rationale states no value of the slot, or several: which one is read is unclear
                continue
            value = values[0]
            out = [Counterfactual(example.question, "yes", swap_phrases(rationale, value, asked), _swapped(passages, value, asked))]
            third = [f for f in sorted(fillers) if f not in (asked, value)]
            if third:
                new = rng.choice(third)
                out.append(Counterfactual(example.question, "no", swap_phrases(rationale, value, new), _swapped(passages, value, new)))
        return out[:copies]
    return []
