"""KARD's main reranker objective: KL(target || model) over each candidate set."""

from __future__ import annotations

import torch
from torch import nn


class BM25DistillationKLLoss(nn.Module):
    """KL divergence from ``softmax(bm25 / target_temperature)`` to
    ``softmax(scores / score_temperature)``, over the real candidates of each set.

    Inputs, all of shape ``(batch, candidates)``: ``scores`` from the reranker (question,
    passage), ``targets`` = BM25(rationale, passage), ``mask`` True for real candidates
    (sets are padded to the same length). Returns the mean over the batch::

        loss = BM25DistillationKLLoss(target_temperature=1.0, score_temperature=1.0)
        loss(scores, targets, mask).backward()
    """

    def __init__(self, target_temperature: float = 1.0, score_temperature: float = 1.0) -> None:
        super().__init__()
        if target_temperature <= 0 or score_temperature <= 0:
            raise ValueError("temperatures must be positive")
        self.target_temperature = target_temperature
        self.score_temperature = score_temperature

    def forward(self, scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if scores.shape != targets.shape or scores.shape != mask.shape:
            raise ValueError(f"scores {tuple(scores.shape)}, targets {tuple(targets.shape)} and mask {tuple(mask.shape)} must match")
        very_negative = torch.finfo(scores.dtype).min
        log_q = torch.log_softmax((scores / self.score_temperature).masked_fill(~mask, very_negative), dim=-1)
        log_p = torch.log_softmax((targets / self.target_temperature).masked_fill(~mask, very_negative), dim=-1)
        kl = (log_p.exp() * (log_p - log_q)).masked_fill(~mask, 0.0).sum(-1)
        return kl.mean()
