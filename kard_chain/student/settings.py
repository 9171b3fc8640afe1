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


class StudentSettings(BaseModel):
    """The training settings that serving must repeat."""

    model_config = ConfigDict(extra="ignore")

    method: Method = "kard"
    """kard (question + passages), rd (question, rationale) or ft (question -> answer)."""
    k: int = Field(default=3, ge=1)
    """Passages per input (kard)."""
    bridge: bool = False
    """Passages come from two rounds, the second a bridge round (:class:`~kard_chain.retrievers.bridge.BridgeRetriever`)."""
    prompt: str = "default"
    """Student prompt variant."""
    prompts_dir: Path | None = None
    """Folder of the user's student prompt files, if any."""
    max_passage_tokens: int = Field(default=384, ge=1)
    """Token budget the passages share in the input."""
    max_source_tokens: int = Field(default=512, ge=8)
    """Inputs are truncated to this many tokens, in training and in serving."""


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
