"""The student's training pairs for the three methods the paper compares.

* ``kard``: input = question + top-k passages retrieved with the *rationale* as the query,
  target = rationale + answer; one pair per kept rationale.
* ``rd`` (reasoning distillation): the same without passages.
* ``ft`` (plain fine-tuning): input = question, target = the answer; one pair per example.

    pairs = student_pairs("kard", examples, formatter, read_rationales("rationales.jsonl"), retriever=bm25, k=3)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from kard_chain.progress import progress
from kard_chain.records import Example
from kard_chain.student.format import StudentFormatter
from kard_chain.student.settings import Method
from kard_chain.teacher.cache import TeacherRecord, rationale_pairs

METHODS: tuple[str, ...] = ("kard", "rd", "ft")


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
    batch_size: int = 256,
    show_progress: bool = True,
) -> list[StudentPair]:
    """Training pairs for ``method`` from examples, the teacher's kept rationales (and/or the
    examples' reference rationales) and, for ``kard``, a retriever queried with each rationale."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    labelled = [e for e in examples if e.answer is not None]
    if method == "ft":
        return [StudentPair(id=e.id, example_id=e.id, source=formatter.source(e.question, e.options).text,
                            target=formatter.target(None, e.answer, e.options)) for e in labelled]
    if method == "kard" and retriever is None:
        raise ValueError("method 'kard' needs a retriever (the passages come from querying it with each rationale)")
    by_id = {e.id: e for e in labelled}
    rationales = rationale_pairs(labelled, teacher, reference=reference)
    if not rationales:
        raise ValueError("no rationales for these examples: give a teacher cache with kept rationales, or reference=True")
    out = []
    bar = progress(total=len(rationales), desc=f"{method} pairs", unit=" pairs", disable=not show_progress)
    for lo in range(0, len(rationales), batch_size):
        chunk = rationales[lo : lo + batch_size]
        found = retriever.batch([r.rationale for r in chunk]) if method == "kard" else [[] for _ in chunk]
        for r, docs in zip(chunk, found):
            e = by_id[r.example_id]
            source = formatter.source(e.question, e.options, docs[:k])
            out.append(StudentPair(id=r.id, example_id=e.id, source=source.text, target=formatter.target(r.rationale, e.answer, e.options),
                                   passage_ids=source.passage_ids))
        bar.update(len(chunk))
    bar.close()
    return out
