"""The teacher's prompt files (read through :mod:`kard_chain.prompt_files`).

Teacher prompts are TOML files ``prompts/teacher/{task}/{variant}.toml``::

    description = "..."
    [instructions]
    rationalize = "..."   # the gold answer is given; the teacher explains it
    solve = "..."         # plain chain of thought
    [[examples]]          # few-shot demonstrations
    question = "..."
    answer = "B"          # an option letter, or yes / no
    rationale = "... So the answer is (B)."
    [examples.options]    # omitted for yes/no questions
    A = "..."

Users add variants by putting files in a folder of their own: ``DIR/{task}/{variant}.toml``
or ``DIR/{variant}.toml``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kard_chain.errors import KardDataError
from kard_chain.prompt_files import prompts_root, read_prompt

TEACHER_TASKS = ("strategyqa", "medqa", "obqa", "generic")


class Demonstration(BaseModel):
    """One few-shot example: a question, its answer and a rationale ending in the answer."""

    model_config = ConfigDict(extra="forbid")

    question: str
    options: dict[str, str] | None = None
    answer: str
    rationale: str

    @model_validator(mode="after")
    def _answer_fits(self) -> Demonstration:
        if self.options is not None and self.answer not in self.options:
            raise ValueError(f"answer {self.answer!r} is not one of the options {sorted(self.options)}")
        if self.options is None and self.answer not in ("yes", "no"):
            raise ValueError(f"a question without options needs the answer yes or no, got {self.answer!r}")
        return self


class Instructions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rationalize: str
    """System instruction when the gold answer is given."""
    solve: str
    """System instruction for plain chain of thought."""


class TeacherPrompt(BaseModel):
    """A teacher prompt variant, as read from its TOML file."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    instructions: Instructions
    examples: list[Demonstration] = Field(default_factory=list)


def load_teacher_prompts(task: str, extra_dir: str | Path | None = None) -> dict[str, TeacherPrompt]:
    """All variants for ``task`` keyed by file stem (``default``, ``terse``, ...), the
    user's folder overriding and extending the shipped ones."""
    if task not in TEACHER_TASKS:
        raise KardDataError(f"unknown teacher task {task!r}; known tasks: {', '.join(TEACHER_TASKS)}")
    folders = [prompts_root() / "teacher" / task]
    if extra_dir is not None:
        extra = Path(extra_dir)
        if not extra.is_dir():
            raise KardDataError("prompt folder not found", path=extra)
        folders += [extra, extra / task]
    variants: dict[str, TeacherPrompt] = {}
    for folder in folders:
        for file in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            variants[file.stem] = read_prompt(file, TeacherPrompt)
    if "default" not in variants:
        raise KardDataError(f"no default.toml prompt for task {task!r}", path=folders[0])
    return variants
