"""Segment-wise postings: count chunks spill to disk as term-major segments, then merge term block by term block.

This is how Lucene and bm25s keep an index build's memory flat: no more than one segment's
postings are sorted in memory at a time, and the merge reads each segment's slice for a range
of terms, so a corpus of any size is indexed within a fixed working memory.

A segment is three raw arrays in a scratch folder: ``indptr`` (int64, one entry per term the
vocabulary held when the segment was written, plus one), ``docs`` (int32, global passage rows,
ascending within a term) and ``tf`` (int32). Segments cover consecutive passage rows, so a
term's postings in segment order are its postings in row order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import scipy.sparse as sp

POSTING_BYTES = 64
"""Working memory per posting while a segment is sorted or a block merged (about 30 bytes measured, doubled)."""


def budget_sizes(memory_gib: float) -> tuple[int, int]:
    """``(postings per segment, passages per count chunk)`` for a build that should stay within ``memory_gib``.

    Half the budget goes to the postings being sorted or merged; the other half is left for the
    vocabulary, the passage ids (about 100 bytes each) and the interpreter.
    """
    if memory_gib <= 0:
        raise ValueError(f"memory_gib must be positive, got {memory_gib}")
    postings = max(1, int(memory_gib * 2**30 / 2 / POSTING_BYTES))
    return postings, max(1, min(20_000, postings // 128))


class SegmentSpill:
    """Collects document-major count chunks; every ``max_postings`` postings become one segment on disk."""

    def __init__(self, folder: Path, max_postings: int) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_postings = max_postings
        self._pending: list[sp.csr_matrix] = []
        self._pending_postings = 0
        self.rows = 0
        """Passage rows written to segments so far."""
        self.n_terms: list[int] = []
        """Terms known to each segment."""
        self.max_tf = 0

    def add(self, counts: sp.csr_matrix) -> None:
        """Take one chunk of per-passage term counts (rows follow the previous chunk's)."""
        self._pending.append(counts)
        self._pending_postings += counts.nnz
        if self._pending_postings >= self.max_postings:
            self.flush()

    def flush(self) -> None:
        """Write the pending chunks as one term-major segment."""
        if not self._pending:
            return
        n_terms = self._pending[-1].shape[1]  # the vocabulary only grows
        for counts in self._pending:
            counts.resize((counts.shape[0], n_terms))
        by_term = sp.vstack(self._pending, format="csr").tocsc()
        self._pending.clear()
        self._pending_postings = 0
        i = len(self.n_terms)
        by_term.indptr.astype(np.int64).tofile(self._file(i, "indptr"))
        (by_term.indices.astype(np.int32) + np.int32(self.rows)).tofile(self._file(i, "docs"))
        by_term.data.astype(np.int32).tofile(self._file(i, "tf"))
        self.max_tf = max(self.max_tf, int(by_term.data.max(initial=0)))
        self.rows += by_term.shape[0]
        self.n_terms.append(n_terms)

    def _file(self, segment: int, name: str) -> Path:
        return self.folder / f"{segment}.{name}"

    def _read(self, segment: int, name: str, dtype: type, lo: int, hi: int) -> np.ndarray:
        """Elements ``lo:hi`` of a segment array, read (not mapped, so they leave memory when dropped)."""
        return np.fromfile(self._file(segment, name), dtype=dtype, count=hi - lo, offset=lo * np.dtype(dtype).itemsize)

    def document_frequencies(self, n_terms: int) -> np.ndarray:
        """Passages holding each term, over all segments."""
        df = np.zeros(n_terms, dtype=np.int64)
        for i, n in enumerate(self.n_terms):
            df[:n] += np.diff(self._read(i, "indptr", np.int64, 0, n + 1))
        return df

    def merged(self, indptr: np.ndarray, block_postings: int) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """``(first term, end term, docs, tf)`` for consecutive term blocks of about ``block_postings`` postings,
        in the final order (``indptr`` from :meth:`document_frequencies`)."""
        n_terms = len(indptr) - 1
        t0 = 0
        while t0 < n_terms:
            t1 = int(np.searchsorted(indptr, indptr[t0] + block_postings, side="right")) - 1
            t1 = min(n_terms, max(t1, t0 + 1))
            size = int(indptr[t1] - indptr[t0])
            docs = np.empty(size, dtype=np.int32)
            tf = np.empty(size, dtype=np.int32)
            cursor = indptr[t0:t1] - indptr[t0]  # where each term's next postings go in the block
            for i, n in enumerate(self.n_terms):
                hi_t = min(t1, n)
                if hi_t <= t0:
                    continue
                seg_ptr = self._read(i, "indptr", np.int64, t0, hi_t + 1)
                lo, hi = int(seg_ptr[0]), int(seg_ptr[-1])
                if hi == lo:
                    continue
                counts = np.diff(seg_ptr)
                dest = np.repeat(cursor[: hi_t - t0] - (seg_ptr[:-1] - lo), counts) + np.arange(hi - lo)
                docs[dest] = self._read(i, "docs", np.int32, lo, hi)
                tf[dest] = self._read(i, "tf", np.int32, lo, hi)
                cursor[: hi_t - t0] += counts
            yield t0, t1, docs, tf
            t0 = t1


class NpyAppender:
    """Writes a 1-D ``.npy`` file of known length chunk by chunk, without holding it in memory."""

    def __init__(self, path: Path, dtype: np.dtype | type, length: int) -> None:
        self.path, self.dtype, self.length = path, np.dtype(dtype), length
        self._file: BinaryIO = path.open("wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (length,)}
        np.lib.format.write_array_header_2_0(self._file, header)
        self.written = 0

    def append(self, values: np.ndarray) -> None:
        """Write the next ``len(values)`` elements."""
        np.ascontiguousarray(values, dtype=self.dtype).tofile(self._file)
        self.written += len(values)

    def close(self) -> None:
        """Finish the file; refuses one whose length differs from the promised one."""
        self._file.close()
        if self.written != self.length:
            raise RuntimeError(f"{self.path}: wrote {self.written} elements, expected {self.length}")
