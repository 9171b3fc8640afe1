"""Reranker training candidates: for each (question, rationale) pair, the passages BM25 finds
with the rationale and with the question, all scored by BM25(rationale, passage).

The scores are the KARD reranker's targets: seeing only the question, it learns to rank
passages the way BM25 ranks them for the rationale. Candidates go to an append-only JSONL
store (see :mod:`kard_chain.jsonl_store`), so an interrupted build resumes where it stopped::

    pairs = rationale_pairs(examples, read_rationales("rationales.jsonl"))   # kard_chain.teacher.cache
    build_candidates(pairs, BM25Retriever.load("index/"), "candidates.jsonl", k=20)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from kard_chain.jsonl_store import JsonlStore, read_records
from kard_chain.manifest import Manifest, identity, ours_to_compare, output_lock, prepare_output, replace_stale
from kard_chain.progress import progress
from kard_chain.records import passage_id
from kard_chain.retrievers.bm25 import BM25Retriever
from kard_chain.teacher.cache import RationalePair


class CandidateSet(BaseModel):
    """The candidate passages of one (question, rationale) pair with their BM25 targets."""

    model_config = ConfigDict(extra="forbid")

    id: str
    """The pair's id."""
    example_id: str
    question: str
    rationale: str
    passage_ids: list[str]
    """Rationale-retrieved passages first (in BM25 order), then the question-retrieved ones not already in."""
    rationale_scores: list[float]
    """BM25(rationale, passage) for each passage: KARD's training target (``target_queries="rationale"``)."""
    from_rationale: list[bool]
    """Whether each passage was retrieved with the rationale (else only with the question)."""


def _drop_stale(path: Path, pairs: Sequence[RationalePair], manifest: Manifest, overwrite: bool) -> None:
    """A store whose sets were built from other rationales or questions (another teacher cache under the same ids) is
    refused, or removed with ``overwrite``: resuming it would train the reranker on stale targets."""
    if not ours_to_compare(path, manifest.kind):
        return  # nothing of ours to compare (prepare_output refuses what is not ours)
    stored = read_records(path, CandidateSet)
    stale = [p.id for p in pairs if p.id in stored and (stored[p.id].rationale, stored[p.id].question) != (p.rationale, p.question)]
    replace_stale(path, stale, overwrite, "were built from other rationales or questions: the rationales file changed")


def build_candidates(
    pairs: Sequence[RationalePair],
    retriever: BM25Retriever,
    path: str | Path,
    *,
    k: int = 20,
    batch_size: int = 256,
    show_progress: bool = True,
    overwrite: bool = False,
) -> dict[str, CandidateSet]:
    """Build (or finish building) the candidate store at ``path``; returns all its sets.

    The store's manifest records ``k`` and the index: finishing it with another is refused (or,
    with ``overwrite``, the store starts over)."""
    if not pairs:
        raise ValueError("no (question, rationale) pairs: do the rationales match the dataset's example ids?")
    index = getattr(retriever.index, "path", None)
    manifest = Manifest("reranker-candidates", {"k": k, "index": identity(index) if index else "in memory"})
    with output_lock(path):  # before the manifest: a second writer, --overwrite too, is refused
        _drop_stale(Path(path), pairs, manifest, overwrite)
        prepare_output(path, manifest, folder=False, overwrite=overwrite)
        with JsonlStore.open(path, CandidateSet) as store:
            todo = [p for p in pairs if p.id not in store]
            bar = progress(total=len(todo), desc="candidates", unit=" pairs", disable=not show_progress)
            for lo in range(0, len(todo), batch_size):
                batch = todo[lo : lo + batch_size]
                by_rationale = retriever.search([p.rationale for p in batch], k)
                by_question = retriever.search([p.question for p in batch], k)
                for pair, r_docs, q_docs in zip(batch, by_rationale, by_question):
                    r_ids = [passage_id(d) for d in r_docs]
                    seen = set(r_ids)
                    ids = r_ids + [i for i in (passage_id(d) for d in q_docs) if i not in seen]
                    store.append(
                        CandidateSet(
                            id=pair.id, example_id=pair.example_id, question=pair.question, rationale=pair.rationale,
                            passage_ids=ids, rationale_scores=retriever.score(pair.rationale, ids),
                            from_rationale=[i < len(r_ids) for i in range(len(ids))],
                        )
                    )
                bar.update(len(batch))
            bar.close()
            return dict(store.records)
