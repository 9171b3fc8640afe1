"""An append-only JSONL file of pydantic records keyed by id: the format of every resumable
job's output (teacher rationales, reranker candidates).

Each record goes to the file in a single ``write`` on a descriptor opened with
``O_APPEND``: once ``write`` returns the kernel holds the whole line, so a killed process
(even ``kill -9``) leaves whole records only. The file is fsynced on close; a power loss
can still tear the last line, which :meth:`JsonlStore.open` cuts away. A rerun reads the
finished ids and skips them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from kard_chain.errors import KardDataError
from kard_chain.manifest import output_lock

R = TypeVar("R", bound=BaseModel)
_OPEN: set[Path] = set()
"""Stores open for appending in this process."""


class JsonlStore(Generic[R]):
    """Records of one pydantic type, keyed by their ``id`` field."""

    def __init__(self, path: str | Path, record_type: type[R]) -> None:
        self.path = Path(path)
        self.record_type = record_type
        self.records: dict[str, R] = {}
        self._fd: int | None = None
        self._lock: Any = None

    @classmethod
    def open(cls, path: str | Path, record_type: type[R]) -> JsonlStore[R]:
        """Take the file's lock, read the finished records (cutting a torn last line) and open for appending."""
        store = cls(path, record_type)
        store.path.parent.mkdir(parents=True, exist_ok=True)
        store._lock = output_lock(store.path)  # one writer at a time: a second would pay for (and append) every record again
        store._lock.__enter__()  # re-entrant within a process (the caller may hold it around its manifest), so:
        if store.path.resolve() in _OPEN:  # one open store per file in this process too
            lock, store._lock = store._lock, None
            lock.__exit__(None, None, None)
            raise KardDataError("another process is writing this output (or another writer in this one); wait for it to "
                                "finish or choose another output", path=store.path)
        _OPEN.add(store.path.resolve())
        try:
            store._fd = os.open(store.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            store.records = read_records(store.path, record_type, repair=True)
        except BaseException:
            store.close()
            raise
        return store

    def __contains__(self, record_id: str) -> bool:
        return record_id in self.records

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[R]:
        return iter(self.records.values())

    def append(self, record: R) -> None:
        """Append one record in a single write; an id already present is refused."""
        if self._fd is None:
            raise RuntimeError("the store is not open for appending; use open()")
        record_id = record.id  # type: ignore[attr-defined]
        if record_id in self.records:
            raise ValueError(f"{record_id!r} is already in {self.path}")
        os.write(self._fd, (record.model_dump_json() + "\n").encode("utf-8"))
        self.records[record_id] = record

    def close(self) -> None:
        """Flush to disk, close the file and release the writer lock."""
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._lock is not None:
            _OPEN.discard(self.path.resolve())
            lock, self._lock = self._lock, None
            lock.__exit__(None, None, None)

    def __enter__(self) -> JsonlStore[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(path: str | Path, record_type: type[R], *, repair: bool = False) -> dict[str, R]:
    """All records of a store file by id (the first of a repeated id wins). A torn last
    line (no newline) is skipped, and cut from the file with ``repair``."""
    path = Path(path)
    if not path.is_file():
        raise KardDataError("file not found", path=path)
    records: dict[str, R] = {}
    good_end = 0
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                break
            if line.strip():
                try:
                    record = record_type.model_validate_json(line)
                except ValidationError as e:
                    err = e.errors()[0]
                    raise KardDataError(err["msg"], path=path, line=number, field=".".join(map(str, err["loc"])) or None) from None
                records.setdefault(record.id, record)  # type: ignore[attr-defined]
            good_end += len(line)
    if repair and good_end < path.stat().st_size:
        os.truncate(path, good_end)
    return records
