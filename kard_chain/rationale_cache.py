"""The teacher's rationale cache: append-only JSONL, one :class:`TeacherRecord` per example id.

Each record goes to the file in a single ``write`` on a descriptor opened with
``O_APPEND``: once ``write`` returns the kernel holds the whole line, so a killed process
(even ``kill -9``) leaves whole records only. The file is fsynced on close; a power loss
can still tear the last line, which :meth:`RationaleCache.open` cuts away. A rerun reads
the finished ids and skips them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kard_chain.errors import KardDataError
from kard_chain.records import Rationale


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


class RationaleCache:
    """Append-only JSONL of teacher records keyed by example id."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: dict[str, TeacherRecord] = {}
        self._fd: int | None = None

    @classmethod
    def open(cls, path: str | Path) -> RationaleCache:
        """Read the finished records (cutting a torn last line) and open for appending."""
        cache = cls(path)
        cache.path.parent.mkdir(parents=True, exist_ok=True)
        if cache.path.exists():
            good_end = 0
            with cache.path.open("rb") as f:
                for number, line in enumerate(f, start=1):
                    if not line.endswith(b"\n"):
                        break  # torn last line: dropped below
                    if line.strip():
                        record = _parse(line, cache.path, number)
                        cache.records.setdefault(record.id, record)
                    good_end += len(line)
            if good_end < cache.path.stat().st_size:
                os.truncate(cache.path, good_end)
        cache._fd = os.open(cache.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return cache

    def __contains__(self, example_id: str) -> bool:
        return example_id in self.records

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[TeacherRecord]:
        return iter(self.records.values())

    def append(self, record: TeacherRecord) -> None:
        """Append one record in a single write; an id already present is refused."""
        if self._fd is None:
            raise RuntimeError("cache is not open for appending; use RationaleCache.open")
        if record.id in self.records:
            raise ValueError(f"example {record.id!r} is already in {self.path}")
        os.write(self._fd, (record.model_dump_json() + "\n").encode("utf-8"))
        self.records[record.id] = record

    def close(self) -> None:
        """Flush to disk and close the file."""
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RationaleCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse(line: bytes, path: Path, number: int) -> TeacherRecord:
    try:
        return TeacherRecord.model_validate_json(line)
    except ValidationError as e:
        err = e.errors()[0]
        raise KardDataError(err["msg"], path=path, line=number, field=".".join(map(str, err["loc"])) or None) from None


def read_rationales(path: str | Path) -> dict[str, TeacherRecord]:
    """All records of a cache file, by example id (read-only)."""
    path = Path(path)
    if not path.is_file():
        raise KardDataError("file not found", path=path)
    records: dict[str, TeacherRecord] = {}
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if line.strip() and line.endswith(b"\n"):
                record = _parse(line, path, number)
                records.setdefault(record.id, record)
    return records


__all__ = ["RationaleCache", "TeacherRecord", "read_rationales"]
