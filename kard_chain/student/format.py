"""The one formatter of the student's text: the trainer and the inference chain both use it.

    fmt = StudentFormatter.load(tokenizer=tokenizer, max_passage_tokens=384)
    source = fmt.source(question, options, passages)     # StudentInput: .text, .passage_ids, ...
    target = fmt.target(rationale, answer, options)      # "... So the answer is text (B)."

The input's templates come from ``prompts/student/{variant}.toml``; the target's form is the
answer grammar of :mod:`kard_chain.answers`, which the inference chain parses. Passages share a token budget
equally; a passage longer than its share is cut at a token boundary (and ends in "..."). When
the budget cannot give each passage ``min_passage_tokens``, the last passages are left out and
the input says how many.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from kard_chain.answers import render_target
from kard_chain.errors import KardDataError
from kard_chain.prompt_files import prompts_root, read_prompt
from kard_chain.records import Passage, passage_id

_TARGET_KEYS = ("target", "answer_only", "choice")


class StudentPrompt(BaseModel):
    """Templates of the student's input, as read from ``prompts/student/*.toml``."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    source: str
    """The input: ``{question}``, ``{options}`` and ``{knowledge}`` (the last two may render empty)."""
    options: str
    """The options block, around ``{options}``."""
    option: str
    """One option: ``{letter}``, ``{text}``."""
    knowledge: str
    """The knowledge block, around ``{passages}``."""
    passage: str
    """One passage: ``{number}``, ``{id}``, ``{title}``, ``{text}``."""
    passage_separator: str = " "
    omitted: str
    """Said in the input when passages were left out for length: ``{count}``."""

    @model_validator(mode="before")
    @classmethod
    def _no_target_templates(cls, data: dict) -> dict:
        found = [k for k in _TARGET_KEYS if isinstance(data, dict) and k in data]
        if found:
            raise ValueError(f"{found[0]!r} is no longer a template: the target's form is fixed by kard_chain.answers "
                             "(the chain parses what the student writes); remove it from the prompt file")
        return data


def load_student_prompt(variant: str = "default", extra_dir: str | Path | None = None) -> StudentPrompt:
    """The student prompt ``variant``: ``extra_dir/{variant}.toml`` if present, else the shipped one."""
    candidates = ([Path(extra_dir) / f"{variant}.toml"] if extra_dir is not None else []) + [
        prompts_root() / "student" / f"{variant}.toml"
    ]
    for file in candidates:
        if file.is_file():
            return read_prompt(file, StudentPrompt)
    raise KardDataError(f"no student prompt {variant!r}", path=candidates[0])


@dataclass
class StudentInput:
    """The student's input text and what became of the passages on the way in."""

    text: str
    passage_ids: list[str] = field(default_factory=list)
    """Ids of the passages in the input, in order."""
    truncated: int = 0
    """Passages cut to fit their share of the token budget."""
    omitted: int = 0
    """Passages left out for length (stated in the text)."""


def as_passage(doc: Any) -> Passage:
    """A :class:`Passage` from a Passage or a LangChain ``Document`` (id and title from metadata)."""
    if isinstance(doc, Passage):
        return doc
    return Passage(id=passage_id(doc, "?"), title=(doc.metadata or {}).get("title", ""), text=doc.page_content)


def passage_key(doc: Any) -> tuple[str, str]:
    """What makes two retrieved passages the same one: id and text (a Passage or a Document)."""
    passage = as_passage(doc)
    return passage.id, passage.text


class StudentFormatter:
    """Renders (question, options, passages) into the student's input and (rationale, answer) into its target."""

    def __init__(
        self,
        prompt: StudentPrompt,
        tokenizer: Any = None,
        max_passage_tokens: int = 384,
        min_passage_tokens: int = 32,
    ) -> None:
        if max_passage_tokens < 1 or min_passage_tokens < 1:
            raise ValueError("max_passage_tokens and min_passage_tokens must be positive")
        self.prompt = prompt
        self.tokenizer = tokenizer
        self.max_passage_tokens = max_passage_tokens
        self.min_passage_tokens = min_passage_tokens

    @classmethod
    def load(cls, variant: str = "default", prompts_dir: str | Path | None = None, **kwargs: Any) -> StudentFormatter:
        """The formatter of prompt file ``variant`` (a user's ``prompts_dir`` first)."""
        return cls(load_student_prompt(variant, prompts_dir), **kwargs)

    @classmethod
    def from_settings(cls, settings: Any, tokenizer: Any = None) -> StudentFormatter:
        """The formatter a student was trained with: ``settings`` has ``prompt``, ``prompts_dir`` and
        ``max_passage_tokens`` (:class:`~kard_chain.student.settings.StudentSettings`, or a training config)."""
        return cls.load(settings.prompt, settings.prompts_dir, tokenizer=tokenizer, max_passage_tokens=settings.max_passage_tokens)

    def source(self, question: str, options: dict[str, str] | None = None, passages: Sequence[Any] = ()) -> StudentInput:
        """The input for a question; ``passages`` (Passage or Document) are left out entirely when empty."""
        p = self.prompt
        opts = ""
        if options:
            opts = p.options.format(options=" ".join(p.option.format(letter=k, text=v) for k, v in options.items()))
        passages = [as_passage(d) for d in passages]
        knowledge, shown, truncated = "", [], 0
        if passages:
            fit = max(1, min(len(passages), self.max_passage_tokens // self.min_passage_tokens))
            share = self.max_passage_tokens // fit
            rendered = []
            for number, passage in enumerate(passages[:fit], 1):
                text, cut = self._cut(passage.text, share)
                truncated += cut
                rendered.append(p.passage.format(number=number, id=passage.id, title=passage.title, text=text))
                shown.append(passage.id)
            if len(passages) > fit:
                rendered.append(p.omitted.format(count=len(passages) - fit))
            knowledge = p.knowledge.format(passages=p.passage_separator.join(rendered))
        text = p.source.format(question=question.strip(), options=opts, knowledge=knowledge)
        return StudentInput(text=text, passage_ids=shown, truncated=truncated, omitted=len(passages) - len(shown))

    def target(self, rationale: str | None, answer: str, options: dict[str, str] | None = None) -> str:
        """Rationale + answer, or the answer alone when ``rationale`` is ``None`` (plain fine-tuning)."""
        return render_target(rationale, answer, options)

    def _cut(self, text: str, budget: int) -> tuple[str, bool]:
        """``text`` cut to ``budget`` tokens (words without a tokenizer) at a token boundary."""
        text = text.strip()
        if self.tokenizer is None:
            words = text.split()
            return (text, False) if len(words) <= budget else (" ".join(words[:budget]) + " ...", True)
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        if len(offsets) <= budget:
            return text, False
        return text[: offsets[budget - 1][1]].rstrip() + " ...", True

