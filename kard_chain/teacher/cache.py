"""The teacher's rationale cache (append-only JSONL, one :class:`TeacherRecord` per example id) and the
(question, rationale) pairs that the reranker and the student learn from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from kard_chain.jsonl_store import JsonlStore, read_records
from kard_chain.records import Example, Rationale


class TeacherRecord(BaseModel):
    """The teacher's output for one example."""

    model_config = ConfigDict(extra="forbid")

    id: str
    """The example id."""
    task: str
    """Prompt task folder (``strategyqa``, ``medqa``...)."""
    mode: str
    """``rationalize`` or ``solve``."""
    prompt: str = "default"
    """Prompt variant."""
    model: str
    """Teacher model."""
    rationales: list[Rationale]
    """All samples, kept and dropped (see ``Rationale.dropped``)."""
    input_tokens: int = 0
    output_tokens: int = 0
    gold: str | None = None
    """The gold answer the rationales were checked against."""

    @property
    def kept(self) -> list[Rationale]:
        """The rationales that passed the answer filter."""
        return [r for r in self.rationales if r.kept]


class RationaleCache(JsonlStore[TeacherRecord]):
    """The teacher's append-only JSONL cache (see :mod:`kard_chain.jsonl_store`)."""

    @classmethod
    def open(cls, path: str | Path) -> RationaleCache:  # type: ignore[override]
        """Read the finished records (cutting a torn last line) and open for appending."""
        return super().open(path, TeacherRecord)  # type: ignore[return-value]


def read_rationales(path: str | Path) -> dict[str, TeacherRecord]:
    """All records of a cache file, by example id (read-only)."""
    return read_records(path, TeacherRecord)


class RationalePair(BaseModel):
    """A question with one of its rationales."""

    model_config = ConfigDict(extra="forbid")

    id: str
    """``{example id}#{rationale index}``."""
    example_id: str
    question: str
    rationale: str


def rationale_pairs(
    examples: Iterable[Example], teacher: Mapping[str, TeacherRecord] | None = None, *, reference: bool = False
) -> list[RationalePair]:
    """Pairs from the teacher's kept rationales and/or the examples' reference rationales."""
    pairs = []
    for ex in examples:
        texts = [r.text for r in teacher[ex.id].kept] if teacher and ex.id in teacher else []
        if reference and ex.reference_rationale:
            texts.append(ex.reference_rationale)
        pairs += [RationalePair(id=f"{ex.id}#{i}", example_id=ex.id, question=ex.question, rationale=t) for i, t in enumerate(texts)]
    return pairs
