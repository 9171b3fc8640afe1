"""The cross-entropy variant: the rationale's best candidate is the one right answer."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class TopCandidateCrossEntropyLoss(nn.Module):
    """Cross-entropy of ``softmax(scores / score_temperature)`` against the candidate with the
    highest BM25(rationale, passage) in each set.

    Same inputs as :class:`~kard_chain.reranker.losses.kl.BM25DistillationKLLoss`: ``scores``,
    ``targets`` and ``mask``, each ``(batch, candidates)``.
    """

    def __init__(self, score_temperature: float = 1.0) -> None:
        super().__init__()
        if score_temperature <= 0:
            raise ValueError("the temperature must be positive")
        self.score_temperature = score_temperature

    def forward(self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if scores.shape != targets.shape or scores.shape != mask.shape:
            raise ValueError(f"scores {tuple(scores.shape)}, targets {tuple(targets.shape)} and mask {tuple(mask.shape)} must match")
        very_negative = torch.finfo(scores.dtype).min
        best = targets.masked_fill(~mask, very_negative).argmax(-1)
        logits = (scores / self.score_temperature).masked_fill(~mask, very_negative)
        return F.cross_entropy(logits, best)
