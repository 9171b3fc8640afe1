"""Reranker losses, one per file. Both take the model's scores for a candidate set, the
BM25(rationale, passage) targets and a mask of real (not padded) candidates."""

from kard_chain.reranker.losses.ce import TopCandidateCrossEntropyLoss
from kard_chain.reranker.losses.kl import BM25DistillationKLLoss

__all__ = ["BM25DistillationKLLoss", "TopCandidateCrossEntropyLoss"]
