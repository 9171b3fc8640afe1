"""A BM25 index over term-major sparse postings, saved as numpy arrays + JSON (no pickle).

Two backends score queries behind one interface:

- ``"fast"`` (default): precomputed BM25 weights per (term, passage), summed by a numba
  kernel (``pip install 'kard-chain[fast]'``) or by a scipy sparse product without numba;
- ``"rank_bm25"``: the reference ``rank_bm25.BM25Okapi``, built from the same counts.

With ``method="okapi"`` the fast backend reproduces ``BM25Okapi`` (its idf
``log((N - df + 0.5) / (df + 0.5))``, floored at ``epsilon * mean idf`` where negative);
``method="lucene"`` uses Lucene's idf ``log(1 + (N - df + 0.5) / (df + 0.5))`` and the
``tf / (tf + k1 * norm)`` saturation instead.

Folder format (``save`` writes it, ``load`` reads it; ``index.json`` is written last)::

    index.json            format, params, tokenizer, sizes
    vocab.json            terms; a term's id is its position
    idf.npy               float64 [n_terms]
    indptr.npy            int64   [n_terms + 1]   postings of term t: indptr[t]:indptr[t+1]
    docs.npy              int32   [nnz]           passage rows, ascending within a term
    weights.npy           float32 [nnz]           BM25 weight of the term in the passage
    tf.npy                uint16 or int32 [nnz]   term frequency
    doc_lengths.npy       int32   [n_docs]
    passage_ids.json      passage ids by row
    passages.jsonl, passage_offsets.npy           the passages themselves
    blocks_*.npy          block-max entries for pruned top-k (see ``pruning``); an index
                          without them builds them in memory on its first pruned query
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kard_chain.bm25 import kernels as bm25_kernels
from kard_chain.bm25 import pruning
from kard_chain.bm25.passage_store import (
    OFFSETS_FILE,
    DiskPassageStore,
    MemoryPassageStore,
    PassageStore,
    PassageWriter,
)
from kard_chain.bm25.segments import POSTING_BYTES, NpyAppender, SegmentSpill, budget_sizes
from kard_chain.bm25.tokenizer import BM25Tokenizer
from kard_chain.errors import KardDataError
from kard_chain.io import atomic_directory, atomic_write_text, read_json
from kard_chain.manifest import Manifest, output_lock, prepare_output
from kard_chain.progress import progress
from kard_chain.records import Passage

Backend = Literal["fast", "rank_bm25"]
FORMAT = "kard-bm25"
FORMAT_VERSION = 1
_ARRAYS = ("idf", "indptr", "docs", "weights", "tf", "doc_lengths")
PRUNE_MIN_RANGES = 32
"""The pruned kernel serves corpora of at least this many passage ranges; smaller ones are scored exhaustively."""
PRUNE_MAX_TERMS = 12
"""Queries of more distinct terms are scored exhaustively by default: measured on Zipf corpora of 1M passages, pruning
reads too many candidates for them to beat the exhaustive kernel's dense rows (docs/scale.md)."""


class BM25Params(BaseModel):
    """How passages are indexed and scored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["okapi", "lucene"] = "lucene"
    """``lucene`` (default): Lucene's idf, positive for every term; ``okapi``: rank_bm25's BM25Okapi, whose idf is
    zero for a term in half the passages (so a two-passage corpus can match nothing)."""
    k1: float = Field(default=1.5, ge=0)
    """Term-frequency saturation."""
    b: float = Field(default=0.75, ge=0, le=1)
    """Length normalisation."""
    epsilon: float = 0.25
    """Okapi only: negative idfs are replaced by ``epsilon`` times the mean idf."""
    include_title: bool = True
    """Index the passage title together with its text."""


class BM25Index:
    """Postings, weights and passages; build with :meth:`from_passages` or :func:`build_index`."""

    def __init__(
        self,
        *,
        params: BM25Params,
        tokenizer: BM25Tokenizer,
        vocab: Sequence[str],
        arrays: dict[str, np.ndarray],
        passage_ids: Sequence[str],
        passages: PassageStore,
    ) -> None:
        self.params = params
        self.tokenizer = tokenizer
        self.vocab = list(vocab)
        self.term_ids = {t: i for i, t in enumerate(self.vocab)}
        self.idf, self.indptr, self.docs, self.weights, self.tf, self.doc_lengths = (arrays[a] for a in _ARRAYS)
        self.passage_ids = list(passage_ids)
        self.passages = passages
        self.path: Path | None = None
        """The folder the index was loaded from (``None`` for one built in memory)."""
        self._rank_bm25: _RankBM25Scorer | None = None
        self._blocks: pruning.BlockMax | None = None

    @property
    def n_docs(self) -> int:
        """Number of passages."""
        return len(self.doc_lengths)

    @cached_property
    def row_of(self) -> dict[str, int]:
        """Passage id -> row."""
        return {pid: row for row, pid in enumerate(self.passage_ids)}

    # ---- building -------------------------------------------------------------------

    @classmethod
    def from_passages(
        cls,
        passages: Iterable[Passage],
        *,
        tokenizer: BM25Tokenizer | None = None,
        params: BM25Params | None = None,
        show_progress: bool = False,
    ) -> BM25Index:
        """Index passages in memory (see :func:`build_index` for a corpus that does not fit)."""
        tokenizer, params = tokenizer or BM25Tokenizer(), params or BM25Params()
        kept: list[Passage] = []
        vocab, arrays, ids = _build_arrays(passages, tokenizer, params, kept.append, show_progress)
        return cls(params=params, tokenizer=tokenizer, vocab=vocab, arrays=arrays, passage_ids=ids, passages=MemoryPassageStore(kept))

    def with_passages(self, passages: Iterable[Passage]) -> BM25Index:
        """A new in-memory index holding this one's passages and ``passages``; only the new ones are tokenised."""
        kept = [self.passages.get(row) for row in range(self.n_docs)]
        terms, arrays, ids = _grown(self, passages, kept.append, show_progress=False)
        return BM25Index(params=self.params, tokenizer=self.tokenizer, vocab=terms, arrays=arrays, passage_ids=ids,
                         passages=MemoryPassageStore(kept))

    # ---- persistence ----------------------------------------------------------------

    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        """Write the index folder atomically: an interrupted save leaves no index behind."""
        with _index_folder(path, self.params, self.tokenizer, overwrite) as tmp:
            self.passages.save(tmp)
            _write_index_files(tmp, self.params, self.tokenizer, self.vocab, self._arrays(), self.passage_ids)

    def _arrays(self) -> dict[str, np.ndarray]:
        return dict(zip(_ARRAYS, (self.idf, self.indptr, self.docs, self.weights, self.tf, self.doc_lengths)))

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True) -> BM25Index:
        """Load an index folder; with ``mmap`` the arrays stay on disk and page in on use."""
        path = Path(path)
        meta_file = path / "index.json"
        if not meta_file.is_file():
            raise KardDataError("not a kard BM25 index (index.json missing: incomplete or wrong folder)", path=path)
        meta = read_json(meta_file)
        if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise KardDataError(f"unsupported index format {meta.get('format')!r} v{meta.get('version')}", path=meta_file)
        try:
            params, tokenizer = BM25Params(**meta["params"]), BM25Tokenizer(**meta["tokenizer"])
        except (KeyError, ValidationError, TypeError) as e:
            raise KardDataError(f"bad params or tokenizer ({e})", path=meta_file) from None
        arrays = {}
        for name in _ARRAYS:
            file = path / f"{name}.npy"
            if not file.is_file():
                raise KardDataError("file missing", path=file)
            try:
                arrays[name] = np.asarray(np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False))
            except ValueError as e:
                raise KardDataError(f"not a readable .npy array ({e}); rebuild the index with kard index --overwrite", path=file) from None
        n_terms, n_docs, nnz = meta["n_terms"], meta["n_docs"], meta["nnz"]
        expected = {"idf": n_terms, "indptr": n_terms + 1, "docs": nnz, "weights": nnz, "tf": nnz, "doc_lengths": n_docs}
        for name, size in expected.items():
            if len(arrays[name]) != size:
                raise KardDataError(f"has {len(arrays[name])} entries, index.json says {size}", path=path / f"{name}.npy")
        vocab, ids = read_json(path / "vocab.json"), read_json(path / "passage_ids.json")
        if len(vocab) != n_terms or len(ids) != n_docs:
            raise KardDataError("vocab.json or passage_ids.json does not match index.json", path=path)
        index = cls(params=params, tokenizer=tokenizer, vocab=vocab, arrays=arrays, passage_ids=ids, passages=DiskPassageStore(path))
        index.path = path
        index._blocks = _load_blocks(path, meta, mmap)
        return index

    # ---- scoring --------------------------------------------------------------------

    def encode_queries(self, queries: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Queries as a CSR triple (indptr, term ids, counts); unknown terms are dropped."""
        indptr, terms, counts = [0], [], []
        for q in queries:
            tally = Counter(t for t in map(self.term_ids.get, self.tokenizer(q)) if t is not None)
            terms.extend(tally)
            counts.extend(tally.values())
            indptr.append(len(terms))
        return np.asarray(indptr, np.int64), np.asarray(terms, np.int64), np.asarray(counts, np.float64)

    @cached_property
    def _numba_top_k(self) -> bm25_kernels.NumbaTopK:
        return bm25_kernels.NumbaTopK(self.indptr, self.docs, self.weights, self.n_docs)

    @property
    def blocks(self) -> pruning.BlockMax:
        """Block-max entries for pruned top-k: saved with the index, else built here on first use."""
        if self._blocks is None:
            self._blocks = pruning.BlockMax.build(self.indptr, self.docs, self.weights)
        return self._blocks

    @cached_property
    def _pruned_top_k(self) -> pruning.PrunedTopK:
        return pruning.PrunedTopK(self.indptr, self.docs, self.weights, self.n_docs, self.blocks)

    def can_prune(self) -> bool:
        """Whether :meth:`top_k` may prune: numba is installed and no weight is negative (okapi's floor on tiny corpora)."""
        return bm25_kernels.HAVE_NUMBA and self._nonnegative

    @cached_property
    def _nonnegative(self) -> bool:
        return bool(np.min(self.idf, initial=0.0) >= 0)  # a weight is its term's idf times a positive factor

    def top_k(self, queries: Sequence[str], k: int, backend: Backend = "fast", *, prune: bool | None = None,
              threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the ``k`` best passages per query, shape ``(len(queries), k)``.

        Only passages with a non-zero score are returned; missing places hold row ``-1``
        and score ``nan``. Ties are broken by row. ``prune`` skips passages that cannot enter
        the top k, with rows and scores equal to exhaustive scoring's; by default it serves
        queries of at most ``PRUNE_MAX_TERMS`` distinct terms on corpora of at least
        ``PRUNE_MIN_RANGES`` ranges of 4,096 passages, and the exhaustive kernel the others
        (faster for them). ``threads`` (default: every core this process may use) share the queries.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        q = self.encode_queries(queries)
        if backend == "rank_bm25":
            return self.rank_bm25.top_k(self, q, k)
        if backend != "fast":
            raise ValueError(f"unknown backend {backend!r}; use 'fast' or 'rank_bm25'")
        if prune and not self.can_prune():
            raise ValueError("this index cannot be pruned (numba missing, or negative weights: use method='lucene')")
        if not bm25_kernels.HAVE_NUMBA:
            return bm25_kernels.top_k_numpy(*q, self.indptr, self.docs, self.weights, self.n_docs, k)
        rows, scores = bm25_kernels._empty_result(len(queries), k)
        threads = threads or available_cores()
        if prune is None:
            bits = self._blocks.bits if self._blocks is not None else pruning.DEFAULT_BITS
            if self.n_docs < PRUNE_MIN_RANGES << bits or not self.can_prune():
                _in_threads(self._numba_top_k, q, k, rows, scores, threads)
                return rows, scores
            pruned = np.diff(q[0]) <= PRUNE_MAX_TERMS
            for kernel, chosen in ((self._pruned_top_k, pruned), (self._numba_top_k, ~pruned)):
                if chosen.all():
                    _in_threads(kernel, q, k, rows, scores, threads)
                elif chosen.any():
                    sub, where = _subset(q, chosen), np.flatnonzero(chosen)
                    sub_rows, sub_scores = bm25_kernels._empty_result(len(where), k)
                    _in_threads(kernel, sub, k, sub_rows, sub_scores, threads)
                    rows[where], scores[where] = sub_rows, sub_scores
            return rows, scores
        _in_threads(self._pruned_top_k if prune else self._numba_top_k, q, k, rows, scores, threads)
        return rows, scores

    def score(self, query: str, ids: Sequence[str], backend: Backend = "fast") -> list[float]:
        """BM25 score of the passages ``ids`` (any, matched or not) for ``query``."""
        try:
            rows = np.asarray([self.row_of[i] for i in ids], dtype=np.int64)
        except KeyError as e:
            raise KeyError(f"passage id {e.args[0]!r} is not in the index") from None
        if backend == "rank_bm25":
            return self.rank_bm25.score(self.tokenizer(query), rows)
        out = np.zeros(len(rows))
        _, terms, counts = self.encode_queries([query])
        for t, c in zip(terms, counts):
            postings = self.docs[self.indptr[t] : self.indptr[t + 1]]
            pos = np.minimum(np.searchsorted(postings, rows), len(postings) - 1)
            hit = postings[pos] == rows
            out[hit] += c * self.weights[self.indptr[t] + pos[hit]].astype(np.float64)
        return out.tolist()

    @property
    def rank_bm25(self) -> _RankBM25Scorer:
        """The reference ``rank_bm25`` scorer, built on first use."""
        if self._rank_bm25 is None:
            self._rank_bm25 = _RankBM25Scorer(self)
        return self._rank_bm25


class _RankBM25Scorer:
    """``rank_bm25.BM25Okapi`` over the index's term counts."""

    def __init__(self, index: BM25Index) -> None:
        if index.params.method != "okapi":
            raise ValueError("the rank_bm25 backend supports method='okapi' only")
        try:
            from rank_bm25 import BM25Okapi
        except ImportError:
            from kard_chain.errors import MissingExtraError

            raise MissingExtraError("rank_bm25", "rank-bm25") from None
        by_doc = sp.csc_matrix((index.tf, index.docs, index.indptr), shape=(index.n_docs, len(index.vocab))).tocsr()
        vocab = index.vocab
        corpus = [
            [vocab[t] for t, c in zip(by_doc.indices[lo:hi], by_doc.data[lo:hi]) for _ in range(c)]
            for lo, hi in itertools.pairwise(by_doc.indptr)
        ]
        p = index.params
        self.bm25 = BM25Okapi(corpus, k1=p.k1, b=p.b, epsilon=p.epsilon)

    def top_k(self, index: BM25Index, q: tuple[np.ndarray, np.ndarray, np.ndarray], k: int):
        q_indptr, q_terms, q_counts = q
        rows, scores = bm25_kernels._empty_result(len(q_indptr) - 1, k)
        for i, (lo, hi) in enumerate(itertools.pairwise(q_indptr)):
            tokens = [index.vocab[t] for t, c in zip(q_terms[lo:hi], q_counts[lo:hi]) for _ in range(int(c))]
            all_scores = self.bm25.get_scores(tokens)
            cand = np.flatnonzero(all_scores)
            cand, vals = bm25_kernels._top_k_of(cand, all_scores[cand], k)
            rows[i, : len(cand)], scores[i, : len(cand)] = cand, vals
        return rows, scores

    def score(self, tokens: list[str], rows: np.ndarray) -> list[float]:
        return list(self.bm25.get_batch_scores(tokens, rows.tolist()))


def available_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _subset(q: tuple[np.ndarray, np.ndarray, np.ndarray], chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The chosen queries of a CSR query triple."""
    q_indptr, q_terms, q_counts = q
    lengths = np.diff(q_indptr)[chosen]
    keep = np.repeat(chosen, np.diff(q_indptr))
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), q_terms[keep], q_counts[keep]


def _in_threads(kernel, q: tuple[np.ndarray, np.ndarray, np.ndarray], k: int, rows: np.ndarray, scores: np.ndarray,
                threads: int) -> None:
    """Run a (GIL-free) kernel over the queries in ``threads`` threads, four shares per thread (costs vary by query)."""
    q_indptr, q_terms, q_counts = q
    n = len(q_indptr) - 1
    cuts = np.linspace(0, n, min(4 * threads, n) + 1).astype(int) if threads > 1 and n > 1 else np.array([0, n])

    def share(lo: int, hi: int) -> None:
        kernel(q_indptr[lo : hi + 1] - q_indptr[lo], q_terms[q_indptr[lo] : q_indptr[hi]], q_counts[q_indptr[lo] : q_indptr[hi]],
               k, rows[lo:hi], scores[lo:hi])

    if len(cuts) <= 2:
        share(0, n)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(share, cuts[:-1], cuts[1:]))


def build_index(
    passages: Iterable[Passage],
    path: str | Path,
    *,
    tokenizer: BM25Tokenizer | None = None,
    params: BM25Params | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    memory_gib: float = 2.0,
) -> BM25Index:
    """Stream passages into an index folder at ``path`` and return it loaded (memory-mapped).

    Passages go to disk as they arrive. Their term counts spill to disk in segments sized by
    ``memory_gib`` and are merged term block by term block, so the build's working memory stays
    within about ``memory_gib`` plus about 100 bytes per passage id, whatever the corpus size; the
    index equals :meth:`BM25Index.from_passages`'s. The folder appears only once complete: an
    interrupted build leaves nothing that loads.
    """
    tokenizer, params = tokenizer or BM25Tokenizer(), params or BM25Params()
    segment_postings, chunk_docs = budget_sizes(memory_gib)
    with _index_folder(path, params, tokenizer, overwrite) as tmp:
        writer = PassageWriter(tmp)
        spill = SegmentSpill(tmp / "segments", segment_postings)
        terms, ids, _, lengths = _count(passages, tokenizer, params, writer.append, show_progress, chunk_docs, on_chunk=spill.add)
        writer.close()
        if not ids:
            raise KardDataError("the corpus holds no passages")
        spill.flush()
        doc_lengths = np.concatenate(lengths)
        idf, indptr, blocks = _merge_segments(spill, len(terms), doc_lengths, params, tmp, segment_postings, show_progress)
        shutil.rmtree(spill.folder)
        _write_index_files(tmp, params, tokenizer, terms, {"idf": idf, "indptr": indptr, "doc_lengths": doc_lengths}, ids, blocks)
    return BM25Index.load(path)


def _merge_segments(spill: SegmentSpill, n_terms: int, doc_lengths: np.ndarray, params: BM25Params, folder: Path,
                    block_postings: int, show_progress: bool) -> tuple[np.ndarray, np.ndarray, pruning.BlockMax | None]:
    """Write ``docs.npy``, ``tf.npy`` and ``weights.npy`` from the spilled segments, one term block at a time;
    return ``idf``, ``indptr`` and the block maxima (built block by block, so the postings are read once)."""
    if doc_lengths.sum() == 0:
        raise KardDataError("no passage has any indexable token")
    df = spill.document_frequencies(n_terms)
    indptr = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)
    idf, norm, nnz = _idf(df, len(doc_lengths), params), _norm(doc_lengths, params), int(indptr[-1])
    files = {name: NpyAppender(folder / f"{name}.npy", dtype, nnz) for name, dtype in
             (("docs", np.int32), ("tf", np.uint16 if spill.max_tf < 2**16 else np.int32), ("weights", np.float32))}
    bar = progress(total=nnz, desc="merging postings", unit=" postings", disable=not show_progress)
    blocks = []
    for t0, t1, docs, tf in spill.merged(indptr, block_postings):
        weights = _weights(idf[t0:t1], indptr[t0 : t1 + 1] - indptr[t0], docs, tf, norm, params)
        files["docs"].append(docs)
        files["tf"].append(tf)
        files["weights"].append(weights)
        if bm25_kernels.HAVE_NUMBA:
            blocks.append((int(indptr[t0]), pruning.BlockMax.build(indptr[t0 : t1 + 1] - indptr[t0], docs, weights)))
        bar.update(len(docs))
    bar.close()
    for file in files.values():
        file.close()
    return idf, indptr, pruning.BlockMax.joined(blocks) if bm25_kernels.HAVE_NUMBA else None


@contextmanager
def _index_folder(path: str | Path, params: BM25Params, tokenizer: BM25Tokenizer, overwrite: bool) -> Iterator[Path]:
    """A temporary folder that becomes the index at ``path`` when the block ends well; never replaces what is not an index."""
    manifest = index_manifest(params, tokenizer)
    with output_lock(path):  # a second build into the same folder is refused, never left to delete the first's work
        _adopt_legacy_index(Path(path))
        prepare_output(path, manifest, folder=True, overwrite=overwrite, write=False)
        with atomic_directory(path, overwrite=overwrite) as tmp:
            manifest.save(tmp, folder=True)
            yield tmp


def index_manifest(params: BM25Params, tokenizer: BM25Tokenizer) -> Manifest:
    """The manifest of a BM25 index folder: what changes its scores."""
    return Manifest("bm25-index", {"params": params.model_dump(), "tokenizer": tokenizer.model_dump()})


def _adopt_legacy_index(path: Path) -> None:
    """An index folder made before manifests gets the manifest its ``index.json`` describes."""
    meta_file = path / "index.json"
    if path.is_dir() and meta_file.is_file() and Manifest.load(path, folder=True) is None:
        meta = read_json(meta_file)
        if meta.get("format") == FORMAT:
            Manifest("bm25-index", {"params": meta.get("params"), "tokenizer": meta.get("tokenizer")}).save(path, folder=True)


def _write_index_files(folder: Path, params: BM25Params, tokenizer: BM25Tokenizer, vocab, arrays, ids,
                       blocks: pruning.BlockMax | None = None) -> None:
    """Write the arrays given (the others were written already), the vocabulary, the ids and, last, ``index.json``."""
    for name in _ARRAYS:
        if name in arrays:
            np.save(folder / f"{name}.npy", np.ascontiguousarray(arrays[name]), allow_pickle=False)
    if blocks is None and bm25_kernels.HAVE_NUMBA and "docs" in arrays:  # block maxima serve the pruned kernel (numba)
        blocks = pruning.BlockMax.build(arrays["indptr"], arrays["docs"], arrays["weights"])
    if blocks is not None:
        for name, a in blocks.arrays().items():
            np.save(folder / f"blocks_{name}.npy", a, allow_pickle=False)
    (folder / "vocab.json").write_text(json.dumps(list(vocab), ensure_ascii=False), encoding="utf-8")
    (folder / "passage_ids.json").write_text(json.dumps(list(ids), ensure_ascii=False), encoding="utf-8")
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "params": params.model_dump(),
        "tokenizer": tokenizer.model_dump(),
        "n_docs": len(arrays["doc_lengths"]),
        "n_terms": len(arrays["idf"]),
        "nnz": int(arrays["indptr"][-1]),
        "block_bits": blocks.bits if blocks else None,
        "block_entries": len(blocks.ranges) if blocks else None,
    }
    atomic_write_text(folder / "index.json", json.dumps(meta, indent=2))


def _load_blocks(path: Path, meta: dict, mmap: bool) -> pruning.BlockMax | None:
    """The saved block-max entries, or ``None`` for an index saved without them (they are then built on first use)."""
    if meta.get("block_bits") is None:
        return None
    files = {name: path / f"blocks_{name}.npy" for name in pruning.BlockMax.ARRAYS}
    arrays = {}
    for name, file in files.items():
        if not file.is_file():
            raise KardDataError("file missing (index.json lists block-max entries)", path=file)
        arrays[name] = np.asarray(np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False))
    n = meta.get("block_entries")
    if len(arrays["indptr"]) != meta["n_terms"] + 1 or any(len(arrays[a]) != n for a in ("ranges", "starts", "maxima")):
        raise KardDataError("block-max arrays do not match index.json; rebuild the index with kard index --overwrite", path=path)
    return pruning.BlockMax(meta["block_bits"], **arrays)


def _build_arrays(
    passages: Iterable[Passage],
    tokenizer: BM25Tokenizer,
    params: BM25Params,
    keep: Callable[[Passage], None],
    show_progress: bool,
    chunk_docs: int = 20_000,
) -> tuple[list[str], dict[str, np.ndarray], list[str]]:
    """Tokenise and count in chunks of passages, then compute idf and weights."""
    terms, ids, per_chunk, lengths = _count(passages, tokenizer, params, keep, show_progress, chunk_docs)
    if not ids:
        raise KardDataError("the corpus holds no passages")
    indptr, docs, tf = _postings(per_chunk, len(terms))
    return terms, _scored(indptr, docs, tf, np.concatenate(lengths), params), ids


def _count(passages: Iterable[Passage], tokenizer: BM25Tokenizer, params: BM25Params, keep: Callable[[Passage], None],
           show_progress: bool, chunk_docs: int = 20_000, terms: Sequence[str] = (), taken: Sequence[str] = (),
           on_chunk: Callable[[sp.csr_matrix], None] | None = None):
    """Term counts of ``passages`` in chunks: ``(terms, ids, per-chunk counts, per-chunk lengths)``.

    ``terms`` are an existing vocabulary (new terms get the next ids), ``taken`` existing passage
    ids. Each chunk's counts go to ``on_chunk`` if given, else into the returned list. Stop words
    get the first ids so that a chunk drops them with one comparison; their ids are removed from
    the vocabulary at the end.
    """
    stop = sorted(tokenizer.stopword_set)
    vocab: defaultdict[str, int] = defaultdict(itertools.count().__next__)
    for word in [*stop, *terms]:
        vocab[word]
    n_stop = len(stop)
    ids: list[str] = []
    seen = set(taken)
    chunk_tokens, chunk_lens = array("q"), array("q")
    per_chunk: list[sp.csr_matrix] = []
    lengths: list[np.ndarray] = []

    def flush() -> None:
        tokens = np.frombuffer(chunk_tokens, dtype=np.int64)
        rows = np.repeat(np.arange(len(chunk_lens)), np.frombuffer(chunk_lens, dtype=np.int64))
        content = tokens >= n_stop
        tokens, rows = tokens[content] - n_stop, rows[content]
        counts = sp.csr_matrix((np.ones(len(tokens), np.int32), (rows, tokens)), shape=(len(chunk_lens), len(vocab) - n_stop))
        counts.sum_duplicates()
        (on_chunk or per_chunk.append)(counts)
        lengths.append(np.bincount(rows, minlength=len(chunk_lens)).astype(np.int32))
        del chunk_tokens[:], chunk_lens[:]

    for passage in progress(passages, desc="indexing", unit=" passages", disable=not show_progress):
        if passage.id in seen:
            where = "already in the index" if passage.id in taken else f"passages #{ids.index(passage.id)} and #{len(ids)}"
            raise KardDataError(f"duplicate passage id {passage.id!r} ({where})")
        seen.add(passage.id)
        ids.append(passage.id)
        keep(passage)
        text = f"{passage.title} {passage.text}" if params.include_title and passage.title else passage.text
        before = len(chunk_tokens)
        chunk_tokens.extend(map(vocab.__getitem__, tokenizer.split(text)))
        chunk_lens.append(len(chunk_tokens) - before)
        if len(chunk_lens) >= chunk_docs:
            flush()
    flush()
    return sorted(vocab, key=vocab.__getitem__)[n_stop:], ids, per_chunk, lengths


def _scored(indptr: np.ndarray, docs: np.ndarray, tf: np.ndarray, doc_lengths: np.ndarray, params: BM25Params) -> dict[str, np.ndarray]:
    """The index arrays: postings with their idf and BM25 weights over the whole corpus."""
    if doc_lengths.sum() == 0:
        raise KardDataError("no passage has any indexable token")
    idf = _idf(np.diff(indptr), len(doc_lengths), params)
    weights = _weights(idf, indptr, docs, tf, _norm(doc_lengths, params), params)
    return {"idf": idf, "indptr": indptr, "docs": docs, "weights": weights, "tf": tf, "doc_lengths": doc_lengths}


def _grown(old: BM25Index, passages: Iterable[Passage], keep: Callable[[Passage], None],
           show_progress: bool) -> tuple[list[str], dict[str, np.ndarray], list[str]]:
    """``old``'s vocabulary, arrays and ids with ``passages`` added: only the new passages are tokenised; their
    counts join the stored term frequencies and every weight is recomputed (idf and average length change)."""
    terms, ids, per_chunk, lengths = _count(passages, old.tokenizer, old.params, keep, show_progress,
                                            terms=old.vocab, taken=old.passage_ids)
    stored = sp.csc_matrix((np.asarray(old.tf), np.asarray(old.docs), np.asarray(old.indptr)), shape=(old.n_docs, len(old.vocab)))
    stored.resize((old.n_docs, len(terms)))
    indptr, docs, tf = _postings([stored.tocsr(), *per_chunk], len(terms))
    arrays = _scored(indptr, docs, tf, np.concatenate([np.asarray(old.doc_lengths), *lengths]), old.params)
    return terms, arrays, [*old.passage_ids, *ids]


def append_to_index(path: str | Path, passages: Iterable[Passage], *, show_progress: bool = True,
                    memory_gib: float | None = None) -> BM25Index:
    """Add ``passages`` to the index folder at ``path``; scores then equal a full rebuild's (idf and average
    length updated).

    Where the old index's postings fit in ``memory_gib`` (or none is given), only the new passages are tokenised
    (see :meth:`BM25Index.with_passages`) and the old passages' text is copied, not parsed. A larger index is
    rebuilt by :func:`build_index` from its own passages and the new ones, within ``memory_gib``. Either way the
    folder's other files (manifest, retriever settings) come along and the folder is replaced atomically.
    """
    path = Path(path)
    with output_lock(path):  # one writer at a time, as for a build
        old = BM25Index.load(path, mmap=True)
        if memory_gib is None or len(old.docs) * POSTING_BYTES <= memory_gib * 2**30:
            return _append(path, passages, show_progress)
        others = {f.name: f.read_text() for f in path.iterdir() if f.suffix == ".json" and f.stat().st_size < 2**20}
        everything = itertools.chain((old.passages.get(row) for row in range(old.n_docs)), passages)
        index = build_index(everything, path, tokenizer=old.tokenizer, params=old.params, overwrite=True,
                            show_progress=show_progress, memory_gib=memory_gib)
        for name, data in others.items():  # what the build does not write (retriever settings) comes along
            if not (path / name).exists():
                atomic_write_text(path / name, data)
        return index


def _append(path: Path, passages: Iterable[Passage], show_progress: bool) -> BM25Index:
    old = BM25Index.load(path, mmap=True)
    rewritten = {f"{name}.npy" for name in _ARRAYS} | {"index.json", "vocab.json", "passage_ids.json", OFFSETS_FILE}
    with atomic_directory(path, overwrite=True) as tmp:
        for file in path.iterdir():
            if file.is_file() and file.name not in rewritten:
                shutil.copyfile(file, tmp / file.name)
        writer = PassageWriter(tmp, append_after=np.asarray(old.passages.offsets))
        terms, arrays, ids = _grown(old, passages, writer.append, show_progress)
        writer.close()
        _write_index_files(tmp, old.params, old.tokenizer, terms, arrays, ids)
    return BM25Index.load(path)


def _postings(per_chunk: list[sp.csr_matrix], n_terms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The chunks' document-by-term counts as term-major postings: ``indptr``, ``docs`` and ``tf`` (emptied ``per_chunk``)."""
    for counts in per_chunk:  # earlier chunks saw a smaller vocabulary
        counts.resize((counts.shape[0], n_terms))
    by_term = sp.vstack(per_chunk, format="csr").tocsc()
    per_chunk.clear()
    indptr = by_term.indptr.astype(np.int64)
    docs = by_term.indices.astype(np.int32)
    tf = by_term.data
    del by_term
    return indptr, docs, tf.astype(np.uint16) if tf.max(initial=0) < 2**16 else tf.astype(np.int32)


def _idf(df: np.ndarray, n_docs: int, params: BM25Params) -> np.ndarray:
    df = df.astype(np.float64)
    if params.method == "lucene":
        return np.log1p((n_docs - df + 0.5) / (df + 0.5))
    idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
    floor = params.epsilon * idf.mean() if len(idf) else 0.0
    return np.where(idf < 0, floor, idf)


def _norm(doc_lengths: np.ndarray, params: BM25Params) -> np.ndarray:
    """Each passage's length normalisation, ``k1 * (1 - b + b * length / mean length)``."""
    return params.k1 * (1 - params.b + params.b * doc_lengths / doc_lengths.mean())


def _weights(idf, indptr, docs, tf, norm, params: BM25Params, chunk: int = 1 << 22) -> np.ndarray:
    """BM25 weight of each posting (``indptr`` indexes ``docs`` by term), in float64, stored as float32, in chunks."""
    term_of = np.repeat(np.arange(len(idf), dtype=np.int32), np.diff(indptr))
    out = np.empty(len(docs), dtype=np.float32)
    gain = 1.0 if params.method == "lucene" else params.k1 + 1
    for lo in range(0, len(docs), chunk):
        s = slice(lo, lo + chunk)
        f = tf[s].astype(np.float64)
        out[s] = idf[term_of[s]] * (f * gain / (f + norm[docs[s]]))
    return out


__all__ = ["Backend", "BM25Index", "BM25Params", "append_to_index", "build_index"]
