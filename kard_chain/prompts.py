"""The one place prompt files are read: ``prompts/`` in the repository, ``kard_chain/prompts``
in an installed wheel.

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

Student prompts are ``prompts/student/{variant}.toml`` (see :class:`StudentPrompt`): the
templates of the student's input and target, shared by the trainer and the inference chain.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kard_chain.errors import KardDataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TEACHER_TASKS = ("strategyqa", "medqa", "obqa", "generic")


def prompts_root() -> Path:
    """The packaged prompts folder, or the repository's in an editable install."""
    packaged = Path(__file__).parent / "prompts"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "prompts"


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


class StudentPrompt(BaseModel):
    """Templates of the student's input and target, as read from ``prompts/student/*.toml``."""

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
    target: str
    """Rationale and answer: ``{rationale}``, ``{answer}``."""
    answer_only: str
    """The plain fine-tuning target: ``{answer}``."""
    choice: str = "({letter}) {text}"
    """A multiple-choice answer inside the target: ``{letter}``, ``{text}``."""


def _read_prompt(file: Path, model: type[BaseModel] = TeacherPrompt) -> BaseModel:
    try:
        with file.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise KardDataError(f"invalid TOML ({e})", path=file) from None
    try:
        return model(**data)
    except ValidationError as e:
        err = e.errors()[0]
        raise KardDataError(err["msg"], path=file, field=".".join(map(str, err["loc"]))) from None


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
            variants[file.stem] = _read_prompt(file)
    if "default" not in variants:
        raise KardDataError(f"no default.toml prompt for task {task!r}", path=folders[0])
    return variants


def load_student_prompt(variant: str = "default", extra_dir: str | Path | None = None) -> StudentPrompt:
    """The student prompt ``variant``: ``extra_dir/{variant}.toml`` if present, else the shipped one."""
    candidates = ([Path(extra_dir) / f"{variant}.toml"] if extra_dir is not None else []) + [
        prompts_root() / "student" / f"{variant}.toml"
    ]
    for file in candidates:
        if file.is_file():
            return _read_prompt(file, StudentPrompt)
    raise KardDataError(f"no student prompt {variant!r}", path=candidates[0])
