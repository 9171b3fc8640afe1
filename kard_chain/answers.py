"""The answer grammar, once: how a target ends, how an answer is read back, how samples vote.

The teacher's filter, the student's formatter and the inference chain all read this module, so
what the student is trained to write is exactly what the chain parses::

    render_target("Goats give milk.", "yes")                # "Goats give milk. So the answer is yes."
    render_target(None, "B", {"A": "cat", "B": "goat"})     # "goat (B)"  (plain fine-tuning)
    parse_answer("... So the answer is goat (B).", {"A": "cat", "B": "goat"})   # "B"
    majority_vote(["B", "A", "B", None])                     # ("B", {"B": 2, "A": 1})

A multiple-choice answer is written with the option's words first, then its letter: a small
model learns to copy the words (they are in the passage) far sooner than to pick a letter (it is
only in the options), and :func:`parse_answer` reads the words before the letter.
"""

from __future__ import annotations

import re
from collections import Counter

ANSWER_PHRASE = "So the answer is"
"""The phrase that closes every rationale target, before the answer."""

_FINAL = re.compile(r"(?:the\s+(?:correct\s+|final\s+)?answer\s*(?:is|:)|answer\s*:)\s*", re.I)
_LETTER = re.compile(r"^\W*\(?([A-Z])\)?(?![A-Za-z])")
_YES_NO = re.compile(r"\b(yes|no|true|false)\b", re.I)
_CLOSING = re.compile(
    r"(?:^|(?<=[.!?]))\s*(?:so,?\s+|thus,?\s+|therefore,?\s+)?the\s+(?:correct\s+|final\s+)?answer\s+is\b[^\n]*$", re.I
)


def format_answer(answer: str, options: dict[str, str] | None) -> str:
    """``(B) text`` for a multiple-choice answer, else the answer itself (how prompts show a gold answer)."""
    return f"({answer}) {options[answer]}" if options and answer in options else answer


def answer_words(answer: str, options: dict[str, str] | None) -> str:
    """How a target writes an answer: ``text (B)`` for a multiple-choice answer, else the answer itself."""
    return f"{options[answer]} ({answer})" if options and answer in options else answer


def strip_final_answer(rationale: str) -> str:
    """The rationale without a closing "So the answer is ..." sentence (the target adds its own)."""
    text = rationale.strip()
    m = _CLOSING.search(text)
    head = text[: m.start()].strip() if m else ""
    return head or text  # a rationale that is only its closing sentence stays as it is


def render_target(rationale: str | None, answer: str, options: dict[str, str] | None = None) -> str:
    """The student's target: rationale then ``So the answer is ...``; the answer alone when ``rationale`` is ``None``."""
    shown = answer_words(answer, options)
    if rationale is None:
        return shown
    reasoning = strip_final_answer(rationale)
    if reasoning and not reasoning.endswith((".", "!", "?")):  # a bare fact (OpenBookQA's fact1) ends its sentence before "So"
        reasoning += "."
    return f"{reasoning} {ANSWER_PHRASE} {shown}."


def parse_answer(text: str, options: dict[str, str] | None = None) -> str | None:
    """The final answer of a rationale: an option letter, ``"yes"``/``"no"``, or ``None``.

    Reads what follows the last "the answer is" / "Answer:" (or else the last sentence) and
    accepts ``(B)``, ``B``, ``B)``, an option's text, or yes/no/true/false.
    """
    finals = list(_FINAL.finditer(text))
    if finals:  # the last answer phrase counts: a rationale may say "the answer is" earlier, then change its mind
        tail = text[finals[-1].end() :].strip()
    else:
        tail = re.split(r"(?<=[.!?])\s+", text.strip())[-1]  # the last sentence ("" for an empty text)
    tail = tail.split("\n")[0][:200]
    if options:
        return _parse_option(tail, options, after_phrase=bool(finals))
    if finals:
        m = _YES_NO.search(tail)
    else:  # no answer phrase: accept "Yes, ..." / "... so, no." in the last sentence only
        m = re.match(r"^\W*(yes|no)\b[,.!]", tail, re.I) or re.search(r"\b(yes|no)\W*$", tail, re.I)
    if m is None:
        return None
    return "yes" if m.group(1).lower() in ("yes", "true") else "no"


def _parse_option(tail: str, options: dict[str, str], after_phrase: bool) -> str | None:
    """An option letter from the answer's text: a leading letter, else the longest option text, else ``(X)``."""
    m = _LETTER.match(tail) if after_phrase else None
    if m and m.group(1) in options:
        return m.group(1)
    lowered = tail.lower()
    hits = [(len(v), k) for k, v in options.items() if v and v.lower() in lowered]
    if hits:
        return max(hits)[1]
    m = re.search(r"\(([A-Z])\)", tail)
    return m.group(1) if m and m.group(1) in options else None


def cut_at_stop(text: str, stop: list[str] | None) -> str:
    """``text`` up to the first occurrence of any stop sequence."""
    for s in stop or []:
        i = text.find(s)
        if i >= 0:
            text = text[:i]
    return text


def majority_vote(answers: list[str | None], logprobs: list[float | None] | None = None) -> tuple[str | None, dict[str, int]]:
    """The most frequent answer and the vote counts (``None`` answers do not vote).

    Ties go to the highest summed log-probability of the tied answers' samples when every
    sample has one, else to the answer seen first.
    """
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return None, {}
    top = max(votes.values())
    tied = [a for a in dict.fromkeys(a for a in answers if a is not None) if votes[a] == top]  # first-seen order
    if len(tied) > 1 and logprobs is not None and all(lp is not None for lp in logprobs):
        mass = {a: sum(lp for x, lp in zip(answers, logprobs) if x == a) for a in tied}
        tied.sort(key=lambda a: -mass[a])
    return tied[0], dict(votes)
