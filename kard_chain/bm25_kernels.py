"""Top-k BM25 scoring over term-major postings: a numba kernel, and a numpy/scipy fallback.

Both take queries as a CSR-like triple (``q_indptr``, ``q_terms``, ``q_counts``) and the
index's postings (``indptr``, ``docs``, ``weights``: the BM25 weight of each term in each
document). They return ``(rows, scores)`` of shape ``(n_queries, k)``, padded with
``-1`` / ``nan`` where fewer than ``k`` documents share a term with the query. Only such
documents are candidates. Order: score descending, then row ascending.
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
    for i in range(result.shape[0]):
        lo, hi = result.indptr[i], result.indptr[i + 1]
        cand, vals = _top_k_of(result.indices[lo:hi].astype(np.int64), result.data[lo:hi].astype(np.float64), k)
        rows[i, : len(cand)], scores[i, : len(cand)] = cand, vals
    return rows, scores


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True)
    def _top_k_numba(q_indptr, q_terms, q_counts, indptr, docs, weights, k, acc, seen, touched, out_rows, out_scores):
        for qi in range(len(q_indptr) - 1):
            n = 0
            for j in range(q_indptr[qi], q_indptr[qi + 1]):
                t = q_terms[j]
                c = q_counts[j]
                for p in range(indptr[t], indptr[t + 1]):
                    d = docs[p]
                    if not seen[d]:
                        seen[d] = True
                        touched[n] = d
                        n += 1
                    acc[d] += c * np.float64(weights[p])
            m = min(k, n)
            if m > 0:
                cand = np.sort(touched[:n])
                vals = np.empty(n, dtype=np.float64)
                for i in range(n):
                    vals[i] = acc[cand[i]]
                if n > m:
                    threshold = np.partition(vals, n - m)[n - m]
                    mask = vals >= threshold
                    cand = cand[mask]
                    vals = vals[mask]
                order = np.argsort(-vals, kind="mergesort")  # stable: ties stay in row order
                for i in range(m):
                    out_rows[qi, i] = cand[order[i]]
                    out_scores[qi, i] = vals[order[i]]
            for i in range(n):
                d = touched[i]
                acc[d] = 0.0
                seen[d] = False


class NumbaTopK:
    """Holds per-thread scratch buffers (one float per document) for the numba kernel."""

    def __init__(self, n_docs: int) -> None:
        self.n_docs = n_docs
        self._local = threading.local()

    def _scratch(self):
        s = getattr(self._local, "scratch", None)
        if s is None:
            s = (np.zeros(self.n_docs), np.zeros(self.n_docs, dtype=np.bool_), np.empty(self.n_docs, dtype=np.int64))
            self._local.scratch = s
        return s

    def __call__(self, q_indptr, q_terms, q_counts, indptr, docs, weights, k: int):
        rows, scores = _empty_result(len(q_indptr) - 1, k)
        _top_k_numba(q_indptr, q_terms, q_counts, indptr, docs, weights, k, *self._scratch(), rows, scores)
        return rows, scores
