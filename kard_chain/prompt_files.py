"""The one place prompt files are read: ``prompts/`` in the repository, ``kard_chain/prompts``
in an installed wheel. The teacher's and the student's prompt models live with their stages."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from kard_chain.errors import KardDataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

P = TypeVar("P", bound=BaseModel)


def prompts_root() -> Path:
    """The packaged prompts folder, or the repository's in an editable install."""
    packaged = Path(__file__).parent / "prompts"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "prompts"


def read_prompt(file: Path, model: type[P]) -> P:
    """A prompt file parsed into ``model``; TOML and field errors name the file and the field."""
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
