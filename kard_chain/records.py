"""The records that flow through kard-chain: questions, passages and rationales.

All are pydantic models that round-trip exactly through JSON::

    ex = Example(id="q1", question="Is water wet?", answer="yes")
    assert Example.model_validate_json(ex.model_dump_json()) == ex
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Example(BaseModel):
    """A question with its gold answer, as a dataset loader yields it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    """Unique id within its dataset split."""
    question: str = Field(min_length=1)
    """The question text, without the options."""
    options: dict[str, str] | None = None
    """Answer options keyed by letter (``{"A": "...", ...}``), or ``None`` for yes/no questions."""
    answer: str | None = None
    """Gold answer: an option letter, or ``"yes"``/``"no"``; ``None`` where the split has no labels."""
    reference_rationale: str | None = None
    """A human-written rationale where the dataset has one (StrategyQA facts, OpenBookQA ``fact1``)."""
    evidence_ids: list[str] | None = None
    """Ids of the knowledge-base passages annotated as gold evidence, where known."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Dataset-specific extras (StrategyQA's decomposition, MedQA's ``meta_info``...)."""

    @model_validator(mode="after")
    def _answer_is_an_option(self) -> Example:
        if not self.question.strip():
            raise ValueError("the question is blank")
        if self.options is not None and self.answer is not None and self.answer not in self.options:
            raise ValueError(f"answer {self.answer!r} is not one of the options {sorted(self.options)}")
        return self

    @property
    def answer_text(self) -> str | None:
        """The gold answer as text: the option's text for multiple choice, else ``answer``."""
        if self.options is not None and self.answer is not None:
            return self.options[self.answer]
        return self.answer


class Passage(BaseModel):
    """A knowledge-base passage."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    """Unique id within the knowledge base."""
    title: str = ""
    """Title of the source article or file."""
    text: str
    """The passage text."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Source-specific extras (section, headers, offsets...)."""


class Rationale(BaseModel):
    """A chain-of-thought rationale written by a teacher (or a human) for one example."""

    model_config = ConfigDict(extra="forbid")

    text: str
    """The rationale text."""
    answer: str | None = None
    """The answer parsed from the rationale, or ``None`` where none could be parsed."""
    model: str | None = None
    """Name of the model (or ``"reference"``) that wrote it."""
    sample_index: int = Field(default=0, ge=0)
    """Index of this sample among the n drawn for the same example."""
    dropped: str | None = None
    """Why the rationale was filtered out (wrong or missing answer); ``None`` if it was kept."""

    @property
    def kept(self) -> bool:
        """Whether the rationale passed the answer filter."""
        return self.dropped is None


def passage_id(doc: Any, default: str | None = None) -> str | None:
    """The one rule for a retrieved passage's id: a :class:`Passage`'s ``id``; a LangChain ``Document``'s
    ``metadata["id"]`` (what kard's retrievers write), else its ``Document.id``, else ``default``."""
    if isinstance(doc, Passage):
        return doc.id
    found = (getattr(doc, "metadata", None) or {}).get("id")
    if found is None or found == "":
        found = getattr(doc, "id", None)
    return default if found is None or found == "" else str(found)
