"""The student's training pairs for the three methods the paper compares.

* ``kard``: input = question + top-k passages, target = rationale + answer; one pair per kept
  rationale. Where the passages come from (``passages_from``): ``"rationale"`` (the paper's: the
  retriever queried with the rationale), ``"question"`` (queried with the question, as at
  inference) or ``"mixed"`` (the question's top k - 1 and the rationale's best passage, in an
  order fixed by the pair id, so the student must find the passage that matters among others).
* ``rd`` (reasoning distillation): the same without passages.
* ``ft`` (plain fine-tuning): input = question, target = the answer; one pair per example.

    pairs = student_pairs("kard", examples, formatter, read_rationales("rationales.jsonl"), retriever=bm25, k=3)
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict

from kard_chain.progress import progress
from kard_chain.records import Example
from kard_chain.student.augment import counterfactuals, value_slots, yes_no_counterfactuals
from kard_chain.student.format import StudentFormatter, passage_key
from kard_chain.student.settings import Method, PassagesFrom
from kard_chain.teacher.cache import TeacherRecord, rationale_pairs

METHODS: tuple[str, ...] = ("kard", "rd", "ft")
PASSAGE_SOURCES: tuple[str, ...] = get_args(PassagesFrom)


class StudentPair(BaseModel):
    """One training pair of the student: input text and target text."""

    model_config = ConfigDict(extra="forbid")

    id: str
    """``{example id}`` (ft) or ``{example id}#{rationale index}``."""
    example_id: str
    source: str
    target: str
    passage_ids: list[str] = []
    """Passages in the input (kard)."""


def student_pairs(
    method: Method,
    examples: Sequence[Example],
    formatter: StudentFormatter,
    teacher: Mapping[str, TeacherRecord] | None = None,
    *,
    reference: bool = False,
    retriever: Any = None,
    k: int = 3,
    passages_from: PassagesFrom = "rationale",
    counterfactual: int = 0,
    yes_no_counterfactual: bool = False,
    batch_size: int = 256,
    show_progress: bool = True,
) -> list[StudentPair]:
    """Training pairs for ``method`` from examples, the teacher's kept rationales (and/or the
    examples' reference rationales) and, for ``kard``, a retriever queried as ``passages_from`` says.

    ``counterfactual`` (kard): for each multiple-choice pair, up to this many more pairs with the gold option's text
    swapped for another option's in the passages and the rationale, and the answer relabelled
    (:mod:`kard_chain.student.augment`); ids ``{pair id}~cf{j}``. ``yes_no_counterfactual``: yes/no pairs whose
    question has a value slot among the examples' questions get the same number of copies, the value their rationale
    states swapped so that one copy flips the answer."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if passages_from not in PASSAGE_SOURCES:
        raise ValueError(f"passages_from must be one of {PASSAGE_SOURCES}, got {passages_from!r}")
    labelled = [e for e in examples if e.answer is not None]
    if method == "ft":
        return [StudentPair(id=e.id, example_id=e.id, source=formatter.source(e.question, e.options).text,
                            target=formatter.target(None, e.answer, e.options)) for e in labelled]
    if method == "kard" and retriever is None:
        raise ValueError("method 'kard' needs a retriever (the passages come from querying it)")
    by_id = {e.id: e for e in labelled}
    rationales = rationale_pairs(labelled, teacher, reference=reference)
    if not rationales:
        raise ValueError("no rationales for these examples: give a teacher cache with kept rationales, or reference=True")
    slots = value_slots([e.question for e in labelled if not e.options]) if yes_no_counterfactual else {}
    out = []
    bar = progress(total=len(rationales), desc=f"{method} pairs", unit=" pairs", disable=not show_progress)
    for lo in range(0, len(rationales), batch_size):
        chunk = rationales[lo : lo + batch_size]
        found = _passages(retriever, chunk, by_id, k, passages_from) if method == "kard" else [[] for _ in chunk]
        for r, docs in zip(chunk, found):
            e = by_id[r.example_id]
            source = formatter.source(e.question, e.options, docs)
            out.append(StudentPair(id=r.id, example_id=e.id, source=source.text, target=formatter.target(r.rationale, e.answer, e.options),
                                   passage_ids=source.passage_ids))
            copies = counterfactuals(e, r.rationale, docs, counterfactual, r.id)
            if slots:
                copies += yes_no_counterfactuals(e, r.rationale, docs, counterfactual, r.id, slots)
            for j, cf in enumerate(copies):
                source = formatter.source(cf.question, e.options, cf.passages)
                out.append(StudentPair(id=f"{r.id}~cf{j}", example_id=e.id, source=source.text,
                                       target=formatter.target(cf.rationale, cf.answer, e.options), passage_ids=source.passage_ids))
        bar.update(len(chunk))
    bar.close()
    return out


def _passages(retriever: Any, chunk: list, by_id: Mapping[str, Example], k: int, passages_from: PassagesFrom) -> list[list]:
    """The ``k`` passages of each rationale's pair, as ``passages_from`` says."""
    by_rationale = retriever.batch([r.rationale for r in chunk]) if passages_from != "question" else None
    if passages_from == "rationale":
        return [docs[:k] for docs in by_rationale]
    example_ids = list(dict.fromkeys(r.example_id for r in chunk))  # each question retrieved once
    found = dict(zip(example_ids, retriever.batch([by_id[i].question for i in example_ids])))
    if passages_from == "question":
        return [found[r.example_id][:k] for r in chunk]
    out = []
    for r, own in zip(chunk, by_rationale):
        best = own[:1]
        taken = {passage_key(d) for d in best}
        docs = best + [d for d in found[r.example_id] if passage_key(d) not in taken][: k - len(best)]
        random.Random(r.id).shuffle(docs)
        out.append(docs)
    return out
