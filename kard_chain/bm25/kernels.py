"""Top-k BM25 scoring over term-major postings: a numba kernel, and a numpy/scipy fallback.

Both take queries as a CSR-like triple (``q_indptr``, ``q_terms``, ``q_counts``) and the
index's postings (``indptr``, ``docs``, ``weights``: the BM25 weight of each term in each
document). They return ``(rows, scores)`` of shape ``(n_queries, k)``, padded with
``-1`` / ``nan`` where fewer than ``k`` documents have a non-zero score: only those are
candidates. Order: score descending, then row ascending.
"""

from __future__ import annotations

import threading

import numpy as np
import scipy.sparse as sp

try:
    import numba
except ImportError:  # numba is the optional [fast] extra
    numba = None

HAVE_NUMBA = numba is not None


def _empty_result(n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n_queries, k), -1, dtype=np.int64), np.full((n_queries, k), np.nan)


def _top_k_of(cand: np.ndarray, vals: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (row, score) of candidate rows ``cand`` (ascending) with scores ``vals``."""
    if len(cand) > k:
        keep = np.argpartition(-vals, k - 1)[:k]
        threshold = vals[keep].min()
        tie = vals >= threshold  # keep every tie at the boundary, then order and cut
        cand, vals = cand[tie], vals[tie]
    order = np.lexsort((cand, -vals))[:k]
    return cand[order], vals[order]


def top_k_numpy(q_indptr, q_terms, q_counts, indptr, docs, weights, n_docs: int, k: int):
    """Sparse matrix product (queries x terms) @ (terms x docs), then a top-k per row."""
    rows, scores = _empty_result(len(q_indptr) - 1, k)
    postings = sp.csr_matrix((weights, docs, indptr), shape=(len(indptr) - 1, n_docs))
    queries = sp.csr_matrix((q_counts.astype(weights.dtype), q_terms, q_indptr), shape=(len(q_indptr) - 1, postings.shape[0]))
    result = (queries @ postings).tocsr()
    result.sort_indices()
    result.eliminate_zeros()
    for i in range(result.shape[0]):
        lo, hi = result.indptr[i], result.indptr[i + 1]
        cand, vals = _top_k_of(result.indices[lo:hi].astype(np.int64), result.data[lo:hi].astype(np.float64), k)
        rows[i, : len(cand)], scores[i, : len(cand)] = cand, vals
    return rows, scores


if HAVE_NUMBA:

    @numba.njit(cache=True, inline="always")
    def ranks_below(v1, r1, v2, r2):
        """Whether (score v1, row r1) ranks below (v2, r2): a lower score, or an equal score and a later row."""
        return v1 < v2 or (v1 == v2 and r1 > r2)

    @numba.njit(cache=True, inline="always")
    def heap_push(heap_v, heap_r, size, v, d):
        """Offer (v, d) to a bounded heap of the best pairs, whose root is the worst; returns the new size."""
        m = len(heap_v)
        if size < m:
            pos = size  # sift up
            while pos > 0:
                parent = (pos - 1) // 2
                if not ranks_below(v, d, heap_v[parent], heap_r[parent]):
                    break
                heap_v[pos], heap_r[pos] = heap_v[parent], heap_r[parent]
                pos = parent
            heap_v[pos], heap_r[pos] = v, d
            return size + 1
        if ranks_below(heap_v[0], heap_r[0], v, d):
            pos = 0  # sift down
            while 2 * pos + 1 < m:
                child = 2 * pos + 1
                if child + 1 < m and ranks_below(heap_v[child + 1], heap_r[child + 1], heap_v[child], heap_r[child]):
                    child += 1
                if not ranks_below(heap_v[child], heap_r[child], v, d):
                    break
                heap_v[pos], heap_r[pos] = heap_v[child], heap_r[child]
                pos = child
            heap_v[pos], heap_r[pos] = v, d
        return size

    @numba.njit(cache=True, nogil=True)
    def _top_k_numba(
        q_indptr, q_terms, q_counts, indptr, docs, weights, dense_slot, dense_weights, k, acc, seen, touched, out_rows, out_scores
    ):
        n_docs = len(acc)
        heap_v = np.empty(k, dtype=np.float64)
        heap_r = np.empty(k, dtype=np.int64)
        for qi in range(len(q_indptr) - 1):
            total = 0
            for j in range(q_indptr[qi], q_indptr[qi + 1]):
                total += indptr[q_terms[j] + 1] - indptr[q_terms[j]]
            # Long posting lists: accumulate, then scan every passage once. Short ones:
            # remember the touched passages and visit only those. The test before each
            # heap_push skips the call for passages worse than the heap's root.
            size = 0
            if total * 8 > n_docs:
                for j in range(q_indptr[qi], q_indptr[qi + 1]):
                    t, c = q_terms[j], q_counts[j]
                    if dense_slot[t] >= 0:  # a term in many passages: add its dense row
                        row = dense_weights[dense_slot[t]]
                        for d in range(n_docs):
                            acc[d] += c * np.float64(row[d])
                    else:
                        for p in range(indptr[t], indptr[t + 1]):
                            acc[docs[p]] += c * np.float64(weights[p])
                for d in range(n_docs):
                    v = acc[d]
                    if v != 0.0:  # a zero score is no match
                        if size < k or ranks_below(heap_v[0], heap_r[0], v, d):
                            size = heap_push(heap_v, heap_r, size, v, d)
                        acc[d] = 0.0
            else:
                n = 0
                for j in range(q_indptr[qi], q_indptr[qi + 1]):
                    t, c = q_terms[j], q_counts[j]
                    for p in range(indptr[t], indptr[t + 1]):
                        d = docs[p]
                        if not seen[d]:
                            seen[d] = True
                            touched[n] = d
                            n += 1
                        acc[d] += c * np.float64(weights[p])
                for i in range(n):
                    d = touched[i]
                    v = acc[d]
                    if v != 0.0 and (size < k or ranks_below(heap_v[0], heap_r[0], v, d)):
                        size = heap_push(heap_v, heap_r, size, v, d)
                    acc[d] = 0.0
                    seen[d] = False
            by_row = np.argsort(heap_r[:size])
            order = by_row[np.argsort(-heap_v[:size][by_row], kind="mergesort")]
            for i in range(size):
                out_rows[qi, i] = heap_r[order[i]]
                out_scores[qi, i] = heap_v[order[i]]


class NumbaTopK:
    """The numba kernel with its per-thread scratch buffers (one float per document) and,
    for terms found in at least a quarter of the documents, dense weight rows: adding a
    contiguous row is several times faster than scattering as many postings."""

    def __init__(self, indptr: np.ndarray, docs: np.ndarray, weights: np.ndarray, n_docs: int) -> None:
        self.n_docs = n_docs
        self.postings = (indptr, docs, weights)
        df = np.diff(indptr)
        dense_terms = np.flatnonzero(df * 4 >= n_docs)
        self.dense_slot = np.full(len(df), -1, dtype=np.int64)
        self.dense_slot[dense_terms] = np.arange(len(dense_terms))
        self.dense_weights = np.zeros((len(dense_terms), n_docs), dtype=np.float32)
        for slot, t in enumerate(dense_terms):
            self.dense_weights[slot, docs[indptr[t] : indptr[t + 1]]] = weights[indptr[t] : indptr[t + 1]]
        self._local = threading.local()

    def _scratch(self):
        s = getattr(self._local, "scratch", None)
        if s is None:
            s = (np.zeros(self.n_docs), np.zeros(self.n_docs, dtype=np.bool_), np.empty(self.n_docs, dtype=np.int64))
            self._local.scratch = s
        return s

    def __call__(self, q_indptr, q_terms, q_counts, k: int, rows: np.ndarray, scores: np.ndarray) -> None:
        """Fill ``rows`` / ``scores`` (shape ``(n_queries, k)``, pre-filled with -1 / nan)."""
        _top_k_numba(q_indptr, q_terms, q_counts, *self.postings, self.dense_slot, self.dense_weights, k, *self._scratch(), rows, scores)
