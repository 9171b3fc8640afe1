"""Stored late-interaction passage vectors: every passage's projected token embeddings,
computed once, kept as fp16 and memory-mapped, so reranking a question costs one encoder
pass plus MaxSim.

Folder format: ``vectors.npy`` (float16 ``[total tokens, dim]``), ``offsets.npy`` (int64
``[passages + 1]``; passage i owns rows ``offsets[i]:offsets[i+1]``), ``ids.json`` and
``meta.json`` (dim, reranker config). Written atomically::

    vectors = PassageVectors.build(reranker, passages, "vectors/")
    vectors = PassageVectors.load("vectors/")
    small = vectors.compress("vectors-2bit/")    # about 34 bytes per token instead of 256

A compressed folder (:mod:`kard_chain.reranker.codec`) holds ``codes.npy`` (each token's centroid),
``residuals.npy`` (packed residual buckets) and ``centroids.npy`` in place of ``vectors.npy``; it
loads and ranks through the same calls, decoding only the candidates' tokens.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from kard_chain.errors import KardDataError
from kard_chain.io import atomic_directory
from kard_chain.progress import progress
from kard_chain.records import Passage
from kard_chain.reranker.codec import ResidualCodec, default_centroids

VECTOR_FILES = {"meta.json", "ids.json", "offsets.npy"}
"""Files every passage-vector folder holds (plain or compressed)."""


def check_replaceable(path: str | Path, overwrite: bool) -> None:
    """Before any work: ``path`` is absent, empty, or (with ``overwrite``) a passage-vector folder; anything else, a
    user's folder above all, is never replaced."""
    path = Path(path)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return
    if not path.is_dir() or not VECTOR_FILES <= {p.name for p in path.iterdir()}:
        raise KardDataError("exists and is not a passage-vector folder; choose another output (overwrite replaces only "
                            "passage vectors)", path=path)
    if not overwrite:
        raise FileExistsError(f"{path} holds passage vectors already; pass overwrite=True (--overwrite) to replace them")


class PassageVectors:
    """Token embeddings of passages by id."""

    def __init__(self, vectors: np.ndarray | None, offsets: np.ndarray, ids: Sequence[str], meta: dict,
                 compressed: tuple[ResidualCodec, np.ndarray, np.ndarray] | None = None) -> None:
        """``vectors`` (fp16 rows), or ``compressed``: the codec, the centroid codes and the packed residuals."""
        self.vectors, self.offsets, self.ids, self.meta = vectors, offsets, list(ids), meta
        self.compressed = compressed

    @cached_property
    def row_of(self) -> dict[str, int]:
        return {pid: i for i, pid in enumerate(self.ids)}

    @property
    def bytes_per_passage(self) -> float:
        """Mean storage per passage: token vectors (or codes, residuals and the shared centroids) and offsets."""
        if self.compressed is None:
            stored = self.vectors.nbytes
        else:  # the centroids are stored as fp16
            stored = self.compressed[0].centroids.size * 2 + self.compressed[1].nbytes + self.compressed[2].nbytes
        return (stored + self.offsets.nbytes) / max(len(self.ids), 1)

    def __contains__(self, passage_id: str) -> bool:
        return passage_id in self.row_of

    def gather(self, passage_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The token vectors of these passages, concatenated (float32), and each one's start row."""
        spans = [(self.offsets[r], self.offsets[r + 1]) for r in (self.row_of[i] for i in passage_ids)]
        starts = np.cumsum([0] + [b - a for a, b in spans[:-1]])
        if self.compressed is None:
            return np.concatenate([self.vectors[a:b] for a, b in spans]).astype(np.float32), starts
        codec, codes, residuals = self.compressed
        return codec.decode(np.concatenate([codes[a:b] for a, b in spans]),
                            np.concatenate([residuals[a:b] for a, b in spans])), starts

    def compress(self, path: str | Path, *, nbits: int = 2, n_centroids: int | None = None, seed: int = 0,
                 overwrite: bool = False, show_progress: bool = True) -> PassageVectors:
        """A compressed copy in ``path`` (see :mod:`kard_chain.reranker.codec`): the codec is fitted on a sample
        of the tokens, then every token is encoded in chunks, straight into memory-mapped files."""
        check_replaceable(path, overwrite)
        if self.compressed is not None:
            raise ValueError("these vectors are compressed already")
        total = len(self.vectors)
        k = min(n_centroids or default_centroids(total), total)
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(total, size=min(total, 64 * k), replace=False))
        codec = ResidualCodec.fit(self.vectors[sample], nbits=nbits, n_centroids=k, seed=seed)
        bar = progress(total=total, desc="compressing vectors", unit=" tokens", disable=not show_progress)
        with atomic_directory(path, overwrite=overwrite) as tmp:
            codes = np.lib.format.open_memmap(tmp / "codes.npy", mode="w+", dtype=codec.code_dtype, shape=(total,))
            width = self.vectors.shape[1] * nbits // 8
            residuals = np.lib.format.open_memmap(tmp / "residuals.npy", mode="w+", dtype=np.uint8, shape=(total, width))
            chunk = 65_536  # tokens encoded at a time: memory stays flat whatever the corpus
            for start in range(0, total, chunk):
                codes[start : start + chunk], residuals[start : start + chunk] = codec.encode(self.vectors[start : start + chunk])
                bar.update(min(chunk, total - start))
            codes.flush()
            residuals.flush()
            del codes, residuals
            np.save(tmp / "centroids.npy", codec.centroids.astype(np.float16))  # decoded in float32
            np.save(tmp / "offsets.npy", self.offsets)
            (tmp / "ids.json").write_text(json.dumps(self.ids))
            (tmp / "meta.json").write_text(json.dumps({**self.meta, "compression": codec.state()}))
        bar.close()
        return PassageVectors.load(path)

    @classmethod
    def build(
        cls, reranker, passages: Iterable[Passage], path: str | Path, *, batch_size: int = 32, overwrite: bool = False, show_progress: bool = True
    ) -> PassageVectors:
        """Encode every passage with ``reranker`` (late interaction) and save the folder."""
        import torch

        from kard_chain.reranker.model import reranker_text

        if reranker.config.scoring != "late_interaction":
            raise ValueError("passage vectors need a late-interaction reranker")
        check_replaceable(path, overwrite)
        ids: list[str] = []
        chunks: list[np.ndarray] = []
        lengths: list[int] = []
        batch: list[Passage] = []
        bar = progress(desc="passage vectors", unit=" passages", disable=not show_progress)

        def flush() -> None:
            with torch.no_grad():
                emb, mask = reranker.embed_passages([reranker_text(p.title, p.text) for p in batch])
            for e, m in zip(emb, mask):
                chunks.append(e[m].cpu().numpy().astype(np.float16))
                lengths.append(int(m.sum()))
            ids.extend(p.id for p in batch)
            bar.update(len(batch))
            batch.clear()

        reranker.eval()
        for p in passages:
            batch.append(p)
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
        bar.close()
        if not ids:
            raise KardDataError("no passages to encode")
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        meta = {"dim": reranker.config.dim, "reranker": reranker.config.model_dump(), "weights": reranker.fingerprint()}
        with atomic_directory(path, overwrite=overwrite) as tmp:
            np.save(tmp / "vectors.npy", np.concatenate(chunks))
            np.save(tmp / "offsets.npy", offsets)
            (tmp / "ids.json").write_text(json.dumps(ids))
            (tmp / "meta.json").write_text(json.dumps(meta))
        return cls.load(path)

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True) -> PassageVectors:
        """Open a saved folder; the vectors stay on disk with ``mmap``."""
        path = Path(path)
        if not (path / "meta.json").is_file():
            raise KardDataError("not a passage-vector folder (meta.json missing)", path=path)
        mode = "r" if mmap else None
        meta = json.loads((path / "meta.json").read_text())
        offsets = np.load(path / "offsets.npy", allow_pickle=False)
        ids = json.loads((path / "ids.json").read_text())
        if "compression" not in meta:
            return cls(np.load(path / "vectors.npy", mmap_mode=mode, allow_pickle=False), offsets, ids, meta)
        state = meta["compression"]
        codec = ResidualCodec(np.load(path / "centroids.npy", allow_pickle=False), state["cutoffs"], state["weights"], state["nbits"])
        return cls(None, offsets, ids, meta, compressed=(codec, np.load(path / "codes.npy", mmap_mode=mode, allow_pickle=False),
                                                         np.load(path / "residuals.npy", mmap_mode=mode, allow_pickle=False)))
