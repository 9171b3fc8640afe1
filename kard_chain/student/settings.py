"""What a trained student needs to be served as it was trained: ``kard_student.json`` in its folder.

The trainer writes its whole config there; serving reads the part below (method, ``k``, prompt
variant, passage budget, input truncation) from the student's own folder, never from the
working directory or from a trainer module::

    settings = read_student_settings("student/final")   # StudentSettings(method="kard", k=3, ...)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kard_chain.errors import KardDataError

STUDENT_CONFIG = "kard_student.json"
"""The settings file inside a trained student's folder."""

Method = Literal["kard", "rd", "ft"]
PassagesFrom = Literal["rationale", "question", "mixed"]
"""Where a kard training input's passages come from (see :func:`kard_chain.student.pairs.student_pairs`)."""


class ReadingSettings(BaseModel):
    """What a KARD student reads, in training and in serving (a recipe's ``[students.reading]``)."""

    model_config = ConfigDict(extra="ignore", use_attribute_docstrings=True)

    k: int = Field(default=3, ge=1)
    """Passages per input (kard)."""
    bridge: bool = False
    """kard: every retrieval of the inputs' passages takes a second, bridge round (:mod:`kard_chain.retrievers.bridge`),
    in training and, since it is saved with the student, in serving."""
    passages_from: PassagesFrom = "rationale"
    """kard: retrieve each input's passages with the rationale (the paper's), the question (as at inference), or mixed
    (the rationale's best passage among the question's top k - 1, shuffled)."""
    counterfactual: int = Field(default=0, ge=0)
    """kard: per multiple-choice pair, this many more with the gold option's text swapped for another option's in the
    passages and rationale and the answer relabelled, so that reading beats recalling (0: the paper's data)."""
    yes_no_counterfactual: bool = False
    """kard: yes/no pairs get ``counterfactual`` copies too, where the question has a value slot (a word that other
    training questions of its template ask instead, e.g. a colour) and the rationale states one: the stated value is
    swapped so that one copy flips the answer (:func:`kard_chain.student.augment.yes_no_counterfactuals`)."""


class StudentSettings(ReadingSettings):
    """The training settings that serving must repeat."""

    model_config = ConfigDict(extra="ignore", use_attribute_docstrings=True)

    method: Method = "kard"
    """kard (question + passages -> rationale + answer), rd (no passages) or ft (question -> answer)."""
    prompt: str = "default"
    """Student prompt variant (``prompts/student/{prompt}.toml``)."""
    prompts_dir: Path | None = None
    """Folder of your own student prompt files."""
    max_passage_tokens: int = Field(default=384, ge=1)
    """Token budget the passages share in the input."""
    max_source_tokens: int = Field(default=512, ge=8)
    """Inputs are truncated to this many tokens (serving truncates the same way)."""


def read_student_settings(folder: str | Path) -> StudentSettings:
    """The settings saved in ``folder/kard_student.json``; a clear error when there are none."""
    file = Path(folder) / STUDENT_CONFIG
    if not file.is_file():
        raise KardDataError(
            f"no {STUDENT_CONFIG}: this folder is not a student saved by 'kard train-student' (a checkpoint or a plain "
            "Hugging Face model?); pass the settings it was trained with, e.g. method='kard', k=3 (on the command line: "
            "--method kard -k 3)", path=Path(folder)
        )
    try:
        return StudentSettings.model_validate(json.loads(file.read_text()))
    except (json.JSONDecodeError, ValidationError) as e:
        raise KardDataError(f"unreadable student settings ({e})", path=file) from None


def saved_settings(llm: object) -> StudentSettings | None:
    """The settings of an LLM loaded from a student folder (its ``model_id``), else ``None``."""
    model_id = getattr(llm, "model_id", "") or ""
    if model_id and (Path(model_id) / STUDENT_CONFIG).is_file():
        return read_student_settings(model_id)
    return None
