"""Exact top-k BM25 with dynamic pruning: block-max bounds over passage ranges, MaxScore within a range.

The passages are cut into ranges of ``2**bits`` consecutive rows. For each term in more than
``2**bits`` passages, :class:`BlockMax` keeps one entry per range its postings touch: the range,
the first posting in it and the largest weight in it (a rarer term's few postings are read
directly, which keeps the entries to a fraction of the postings). A query's upper bound for a range is the sum, over its terms, of count x that largest
weight. Ranges are visited best bound first, and the search stops at the first range whose bound
falls below the k-th best score found: no passage there can enter the top k.

Inside a range (MaxScore): the terms whose bounds add up to less than the k-th best score cannot
make a passage enter the top k on their own, so only passages holding one of the other terms are
candidates; a candidate's remaining terms are added (by binary search, or by reading the term's
postings in the range when candidates are many) while its bound can still reach the top k. Each passage that can enter is scored again term by term in the query's order, as
the exhaustive kernel sums, so scores and ties equal exhaustive scoring's bit for bit.
"""

from __future__ import annotations

import threading

import numpy as np

from kard_chain.bm25.kernels import HAVE_NUMBA, numba

DEFAULT_BITS = 12
"""Passages per range: 4,096."""


class BlockMax:
    """Per-term block-max entries: ``indptr`` (by term), ``ranges``, ``starts`` (posting offsets) and ``maxima``."""

    ARRAYS = ("indptr", "ranges", "starts", "maxima")

    def __init__(self, bits: int, indptr: np.ndarray, ranges: np.ndarray, starts: np.ndarray, maxima: np.ndarray) -> None:
        self.bits = bits
        self.indptr, self.ranges, self.starts, self.maxima = indptr, ranges, starts, maxima

    @classmethod
    def build(cls, indptr: np.ndarray, docs: np.ndarray, weights: np.ndarray, bits: int | None = None) -> BlockMax:
        """Scan the postings once (term by term) and record the ranges of ``2**bits`` passages of each term in more
        than ``2**bits`` passages; the kernel reads a rarer term's postings directly."""
        if not HAVE_NUMBA:
            raise RuntimeError("block maxima need numba (pip install 'kard-chain[fast]')")
        bits = DEFAULT_BITS if bits is None else bits
        indptr = np.asarray(indptr, dtype=np.int64)
        counts = np.zeros(len(indptr) - 1, dtype=np.int64)
        _count_entries(indptr, docs, bits, counts)
        b_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        n = int(b_indptr[-1])
        ranges, starts, maxima = np.empty(n, np.int32), np.empty(n, np.int64), np.empty(n, np.float32)
        _fill_entries(indptr, docs, weights, bits, b_indptr, ranges, starts, maxima)
        return cls(bits, b_indptr, ranges, starts, maxima)

    @classmethod
    def joined(cls, parts: list[tuple[int, BlockMax]]) -> BlockMax:
        """One block index from parts built term block by term block, each with the offset of its first posting."""
        bits = parts[0][1].bits if parts else DEFAULT_BITS
        counts = [np.diff(b.indptr) for _, b in parts]
        return cls(bits, np.concatenate([[0], np.cumsum(np.concatenate(counts or [np.zeros(0, np.int64)]))]).astype(np.int64),
                   np.concatenate([b.ranges for _, b in parts] or [np.zeros(0, np.int32)]),
                   np.concatenate([b.starts + offset for offset, b in parts] or [np.zeros(0, np.int64)]),
                   np.concatenate([b.maxima for _, b in parts] or [np.zeros(0, np.float32)]))

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by name, for saving."""
        return dict(zip(self.ARRAYS, (self.indptr, self.ranges, self.starts, self.maxima)))


class PrunedTopK:
    """The pruned kernel over an index's postings and block-max entries, with per-thread scratch buffers."""

    def __init__(self, indptr: np.ndarray, docs: np.ndarray, weights: np.ndarray, n_docs: int, blocks: BlockMax) -> None:
        if not HAVE_NUMBA:
            raise RuntimeError("pruned top-k needs numba (pip install 'kard-chain[fast]')")
        self.n_docs, self.blocks = n_docs, blocks
        self.n_ranges = ((n_docs - 1) >> blocks.bits) + 1
        self.postings = (indptr, docs, weights)
        self._local = threading.local()

    def _scratch(self):
        s = getattr(self._local, "scratch", None)
        if s is None:
            size = 1 << self.blocks.bits
            s = (np.zeros(self.n_ranges), np.zeros(size), np.zeros(size, dtype=np.bool_), np.empty(size, dtype=np.int64))
            self._local.scratch = s
        return s

    def __call__(self, q_indptr, q_terms, q_counts, k: int, rows: np.ndarray, scores: np.ndarray,
                 work: np.ndarray | None = None) -> None:
        """Fill ``rows`` / ``scores`` (shape ``(n_queries, k)``, pre-filled with -1 / nan); ``work`` (shape
        ``(n_queries, 2)``, if given) receives the ranges visited and the postings and candidates read for each query."""
        b = self.blocks
        if work is None:
            work = np.zeros((len(q_indptr) - 1, 2), dtype=np.int64)
        _pruned_top_k(q_indptr, q_terms, q_counts, *self.postings, b.bits, b.indptr, b.ranges, b.starts, b.maxima,
                      k, *self._scratch(), rows, scores, work)


if HAVE_NUMBA:
    from kard_chain.bm25.kernels import heap_push, ranks_below

    @numba.njit(cache=True, nogil=True)
    def _count_entries(indptr, docs, bits, counts):
        for t in range(len(indptr) - 1):
            if indptr[t + 1] - indptr[t] <= 1 << bits:
                continue  # a rare term: no entries
            last, n = -1, 0
            for p in range(indptr[t], indptr[t + 1]):
                r = docs[p] >> bits
                if r != last:
                    n += 1
                    last = r
            counts[t] = n

    @numba.njit(cache=True, nogil=True)
    def _fill_entries(indptr, docs, weights, bits, b_indptr, ranges, starts, maxima):
        for t in range(len(indptr) - 1):
            if b_indptr[t] == b_indptr[t + 1]:
                continue
            e, last = b_indptr[t] - 1, -1
            for p in range(indptr[t], indptr[t + 1]):
                r = docs[p] >> bits
                if r != last:
                    e += 1
                    last = r
                    ranges[e], starts[e], maxima[e] = r, p, weights[p]
                elif weights[p] > maxima[e]:
                    maxima[e] = weights[p]

    @numba.njit(cache=True, inline="always")
    def _find(docs, lo, hi, d):
        """The first position in ``docs[lo:hi]`` (ascending) holding ``d`` or more; ``hi`` if none."""
        while lo < hi:
            mid = (lo + hi) >> 1
            if docs[mid] < d:
                lo = mid + 1
            else:
                hi = mid
        return lo

    @numba.njit(cache=True, inline="always")
    def _below(bound, theta):
        """True when ``bound`` is surely less than ``theta``: a margin covers summation order."""
        return bound < theta - 1e-9 * abs(theta) - 1e-12

    @numba.njit(cache=True, inline="always")
    def _keep_reaching(touched, n, acc, seen, rest, theta):
        """Keep in ``touched[:n]`` (order kept) the passages whose score plus ``rest`` can reach ``theta``; clear the others."""
        m = 0
        for i in range(n):
            d = touched[i]
            if _below(acc[d] + rest, theta):
                acc[d] = 0.0
                seen[d] = False
            else:
                touched[m] = d
                m += 1
        return m

    @numba.njit(cache=True, inline="always")
    def _add_term(docs, weights, lo, hi, c, base, touched, n, acc, seen):
        """Add a term's weights (postings ``lo:hi``) to the candidates ``touched[:n]`` (ascending); return the reads."""
        if lo == hi:
            return 0
        if n * 16 < hi - lo:  # few candidates: look each one up
            for i in range(n):
                row = base + touched[i]
                lo = _find(docs, lo, hi, row)
                if lo < hi and docs[lo] == row:
                    acc[touched[i]] += c * np.float64(weights[lo])
            return n
        for p in range(lo, hi):  # many: read the term's postings in the range
            d = docs[p] - base
            if seen[d]:
                acc[d] += c * np.float64(weights[p])
        return hi - lo

    @numba.njit(cache=True, nogil=True)
    def _pruned_top_k(q_indptr, q_terms, q_counts, indptr, docs, weights, bits, b_indptr, b_ranges, b_starts, b_maxima,
                      k, ub, acc, seen, touched, out_rows, out_scores, work):
        n_ranges = len(ub)
        heap_v = np.empty(k, dtype=np.float64)
        heap_r = np.empty(k, dtype=np.int64)
        for qi in range(len(q_indptr) - 1):
            q0, q1 = q_indptr[qi], q_indptr[qi + 1]
            nq = q1 - q0
            for j in range(q0, q1):  # each range's bound
                t, c = q_terms[j], q_counts[j]
                for e in range(b_indptr[t], b_indptr[t + 1]):
                    ub[b_ranges[e]] += c * max(np.float64(b_maxima[e]), 0.0)
                if b_indptr[t] == b_indptr[t + 1]:  # a rare term: its postings, range by range
                    p, end = indptr[t], indptr[t + 1]
                    while p < end:
                        r, best = docs[p] >> bits, weights[p]
                        p += 1
                        while p < end and docs[p] >> bits == r:
                            best = max(best, weights[p])
                            p += 1
                        ub[r] += c * max(np.float64(best), 0.0)
            live = np.flatnonzero(ub > 0.0)
            order = live[np.argsort(-ub[live], kind="mergesort")]
            seg_lo = np.empty(nq, dtype=np.int64)  # the query's postings in the current range, in query order
            seg_hi = np.empty(nq, dtype=np.int64)
            bound = np.empty(nq, dtype=np.float64)
            by_bound = np.empty(nq, dtype=np.int64)
            is_rest = np.zeros(nq, dtype=np.bool_)
            size = 0
            for r in order:
                if size == k and _below(ub[r], heap_v[0]):
                    break  # every range left is bounded below the k-th best
                work[qi, 0] += 1
                base = np.int64(r) << bits
                m = 0
                for j in range(nq):
                    t = q_terms[q0 + j]
                    seg_lo[j] = seg_hi[j] = 0
                    bound[j] = 0.0
                    if b_indptr[t] < b_indptr[t + 1]:
                        e = _find(b_ranges, b_indptr[t], b_indptr[t + 1], r)
                        if e < b_indptr[t + 1] and b_ranges[e] == r:
                            seg_lo[j] = b_starts[e]
                            seg_hi[j] = b_starts[e + 1] if e + 1 < b_indptr[t + 1] else indptr[t + 1]
                            bound[j] = q_counts[q0 + j] * max(np.float64(b_maxima[e]), 0.0)
                    else:  # a rare term: find its postings in the range
                        seg_lo[j] = _find(docs, indptr[t], indptr[t + 1], base)
                        seg_hi[j] = _find(docs, seg_lo[j], indptr[t + 1], base + (1 << bits))
                        best = 0.0
                        for p in range(seg_lo[j], seg_hi[j]):
                            best = max(best, np.float64(weights[p]))
                        bound[j] = q_counts[q0 + j] * best
                    if seg_lo[j] < seg_hi[j]:
                        by_bound[m] = j
                        m += 1
                for i in range(1, m):  # terms by bound ascending (insertion sort: m is small)
                    x = by_bound[i]
                    p = i - 1
                    while p >= 0 and bound[by_bound[p]] > bound[x]:
                        by_bound[p + 1] = by_bound[p]
                        p -= 1
                    by_bound[p + 1] = x
                # non-essential terms: the first n_rest by bound, whose bounds sum below the k-th best
                n_rest, rest = 0, 0.0
                if size == k:
                    while n_rest < m and _below(rest + bound[by_bound[n_rest]], heap_v[0]):
                        rest += bound[by_bound[n_rest]]
                        is_rest[by_bound[n_rest]] = True
                        n_rest += 1
                essential = 0
                for j in range(nq):
                    if not is_rest[j]:
                        essential += seg_hi[j] - seg_lo[j]
                work[qi, 1] += essential
                n = 0
                if essential * 4 > len(acc):  # many postings: add them up, then scan the range (its passages in row order)
                    for j in range(nq):  # the essential terms (every term while the heap fills), in query order
                        if not is_rest[j]:
                            c = q_counts[q0 + j]
                            for p in range(seg_lo[j], seg_hi[j]):
                                acc[docs[p] - base] += c * np.float64(weights[p])
                    for d in range(len(acc)):
                        if acc[d] != 0.0:
                            seen[d] = True
                            touched[n] = d
                            n += 1
                else:  # few: remember the passages they touch
                    for j in range(nq):
                        if not is_rest[j]:
                            c = q_counts[q0 + j]
                            for p in range(seg_lo[j], seg_hi[j]):
                                d = docs[p] - base
                                if not seen[d]:
                                    seen[d] = True
                                    touched[n] = d
                                    n += 1
                                acc[d] += c * np.float64(weights[p])
                    if n_rest:
                        touched[:n].sort()
                if n_rest:
                    # candidates: passages whose essential score plus the other terms' bounds reaches the k-th best
                    work[qi, 1] += n
                    n = _keep_reaching(touched, n, acc, seen, rest, heap_v[0])
                    left = rest
                    for x in range(n_rest - 1, -1, -1):  # the other terms, largest bound first, while candidates remain
                        if n == 0:
                            break
                        j = by_bound[x]
                        left -= bound[j]
                        work[qi, 1] += n + _add_term(docs, weights, seg_lo[j], seg_hi[j], q_counts[q0 + j], base, touched, n, acc, seen)
                        n = _keep_reaching(touched, n, acc, seen, left, heap_v[0])
                    for i in range(n):  # the survivors' scores again, every term in query order, as the exhaustive kernel sums
                        acc[touched[i]] = 0.0
                    for j in range(nq):
                        if seg_lo[j] < seg_hi[j] and n:
                            work[qi, 1] += _add_term(docs, weights, seg_lo[j], seg_hi[j], q_counts[q0 + j], base, touched, n, acc, seen)
                for i in range(n):
                    d = touched[i]
                    v = acc[d]
                    acc[d] = 0.0
                    seen[d] = False
                    row = base + d
                    if v != 0.0 and (size < k or ranks_below(heap_v[0], heap_r[0], v, row)):
                        size = heap_push(heap_v, heap_r, size, v, row)
                for x in range(n_rest):
                    is_rest[by_bound[x]] = False
            for r in range(n_ranges):
                ub[r] = 0.0
            by_row = np.argsort(heap_r[:size])
            out = by_row[np.argsort(-heap_v[:size][by_row], kind="mergesort")]
            for i in range(size):
                out_rows[qi, i] = heap_r[out[i]]
                out_scores[qi, i] = heap_v[out[i]]
