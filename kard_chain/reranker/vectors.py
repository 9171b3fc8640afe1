"""Stored late-interaction passage vectors: every passage's projected token embeddings,
computed once, kept as fp16 and memory-mapped, so reranking a question costs one encoder
pass plus MaxSim.

Folder format: ``vectors.npy`` (float16 ``[total tokens, dim]``), ``offsets.npy`` (int64
``[passages + 1]``; passage i owns rows ``offsets[i]:offsets[i+1]``), ``ids.json`` and
``meta.json`` (dim, reranker config). Written atomically::

    vectors = PassageVectors.build(reranker, passages, "vectors/")
    vectors = PassageVectors.load("vectors/")
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


class PassageVectors:
    """Token embeddings of passages by id."""

    def __init__(self, vectors: np.ndarray, offsets: np.ndarray, ids: Sequence[str], meta: dict) -> None:
        self.vectors, self.offsets, self.ids, self.meta = vectors, offsets, list(ids), meta

    @cached_property
    def row_of(self) -> dict[str, int]:
        return {pid: i for i, pid in enumerate(self.ids)}

    @property
    def bytes_per_passage(self) -> float:
        """Mean storage per passage (vectors + offset)."""
        return (self.vectors.nbytes + self.offsets.nbytes) / max(len(self.ids), 1)

    def __contains__(self, passage_id: str) -> bool:
        return passage_id in self.row_of

    def gather(self, passage_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The token vectors of these passages, concatenated (float32), and each one's start row."""
        rows = [self.row_of[i] for i in passage_ids]
        parts = [self.vectors[self.offsets[r] : self.offsets[r + 1]] for r in rows]
        starts = np.cumsum([0] + [len(p) for p in parts[:-1]])
        return np.concatenate(parts).astype(np.float32), starts

    @classmethod
    def build(
        cls, reranker, passages: Iterable[Passage], path: str | Path, *, batch_size: int = 32, overwrite: bool = False, show_progress: bool = True
    ) -> PassageVectors:
        """Encode every passage with ``reranker`` (late interaction) and save the folder."""
        import torch

        from kard_chain.reranker.model import reranker_text

        if reranker.config.scoring != "late_interaction":
            raise ValueError("passage vectors need a late-interaction reranker")
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
        meta = {"dim": reranker.config.dim, "reranker": reranker.config.model_dump()}
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
        return cls(
            np.load(path / "vectors.npy", mmap_mode=mode, allow_pickle=False),
            np.load(path / "offsets.npy", allow_pickle=False),
            json.loads((path / "ids.json").read_text()),
            json.loads((path / "meta.json").read_text()),
        )
