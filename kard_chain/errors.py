"""Errors raised for bad input: each names the file, the record and the field."""

from __future__ import annotations

from pathlib import Path


class KardDataError(ValueError):
    """A dataset, corpus or index file that cannot be read as what it claims to be."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
        field: str | None = None,
    ) -> None:
        where = str(path) if path is not None else ""
        if line is not None:
            where += f":{line}"
        if key is not None:
            where += f" [{key}]"
        if field is not None:
            message = f"field '{field}': {message}"
        super().__init__(f"{where}: {message}" if where else message)
        self.path = str(path) if path is not None else None
        self.line = line
        self.key = key
        self.field = field


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message names the pip extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed. Install it with: pip install 'kard-chain[{extra}]'"
        )
