"""Passage storage for an index: a list in memory, or JSONL on disk read by offset."""

from __future__ import annotations

import os
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Protocol

import numpy as np

from kard_chain.errors import KardDataError
from kard_chain.records import Passage

PASSAGES_FILE = "passages.jsonl"
OFFSETS_FILE = "passage_offsets.npy"


class PassageStore(Protocol):
    """Random access to passages by row."""

    def __len__(self) -> int: ...

    def get(self, row: int) -> Passage: ...

    def save(self, folder: str | Path) -> None: ...


class PassageWriter:
    """Appends passages to ``passages.jsonl`` in a folder, recording each line's byte offset."""

    def __init__(self, folder: str | Path, append_after: np.ndarray | None = None) -> None:
        """A new ``passages.jsonl``, or (``append_after``: the offsets of the passages already in it) more lines at its end."""
        self.folder = Path(folder)
        self._file: IO[bytes] = (self.folder / PASSAGES_FILE).open("ab" if append_after is not None else "wb")
        self._offsets = array("q", np.asarray(append_after, dtype=np.int64).tobytes() if append_after is not None else [0])

    def append(self, passage: Passage) -> None:
        """Write one passage."""
        line = passage.model_dump_json().encode("utf-8") + b"\n"
        self._file.write(line)
        self._offsets.append(self._offsets[-1] + len(line))

    def close(self) -> None:
        """Flush the file and write the offsets array."""
        self._file.close()
        np.save(self.folder / OFFSETS_FILE, np.frombuffer(self._offsets, dtype=np.int64))


class MemoryPassageStore:
    """Passages held in a list."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        self.passages = list(passages)

    def __len__(self) -> int:
        return len(self.passages)

    def get(self, row: int) -> Passage:
        return self.passages[row]

    def save(self, folder: str | Path) -> None:
        """Write the passages in the on-disk format."""
        writer = PassageWriter(folder)
        for p in self.passages:
            writer.append(p)
        writer.close()


class DiskPassageStore:
    """Passages read on demand from ``passages.jsonl``; safe to share between threads."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._fd: int | None = None
        offsets_file, passages_file = self.folder / OFFSETS_FILE, self.folder / PASSAGES_FILE
        for file in (offsets_file, passages_file):
            if not file.is_file():
                raise KardDataError("file missing: the index folder is incomplete; rebuild it with kard index --overwrite", path=file)
        try:
            self.offsets = np.load(offsets_file, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise KardDataError(f"not a readable .npy array ({e}); rebuild the index with kard index --overwrite", path=offsets_file) from None
        size = passages_file.stat().st_size
        if len(self.offsets) == 0 or int(self.offsets[-1]) != size:
            raise KardDataError(f"holds {size} bytes where {OFFSETS_FILE} expects {int(self.offsets[-1]) if len(self.offsets) else '?'} "
                                "(half-written?); rebuild the index with kard index --overwrite", path=passages_file)
        self._fd = os.open(passages_file, os.O_RDONLY)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get(self, row: int) -> Passage:
        start, end = int(self.offsets[row]), int(self.offsets[row + 1])
        return Passage.model_validate_json(os.pread(self._fd, end - start, start))

    def save(self, folder: str | Path) -> None:
        """Copy the passage files into ``folder``."""
        for name in (PASSAGES_FILE, OFFSETS_FILE):
            with (self.folder / name).open("rb") as src, (Path(folder) / name).open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)

    def __del__(self) -> None:
        try:
            if self._fd is not None:
                os.close(self._fd)
        except (AttributeError, OSError):
            pass
