"""``KardReranker``: scores (question, passage) pairs with any Hugging Face encoder.

Two scorers:

- ``late_interaction`` (default): ColBERT-style MaxSim. Question and passage are encoded
  apart; token embeddings go through a linear projection to ``dim`` and are L2-normalised;
  the score is the sum over question tokens of the best dot product with a passage token.
  Passage embeddings do not depend on the question, so they can be computed once and stored.
- ``cross_encoder``: question and passage encoded together; a linear head on the first token.

Saved as a folder: ``reranker.json`` (the config), ``head.safetensors`` (projection or
head) and ``encoder/`` (the encoder and its tokenizer, ``save_pretrained`` format)::

    reranker = KardReranker.from_encoder("path/to/all-MiniLM-L6-v2")
    scores = reranker.score(["Do goats give milk?"], [["Goats are mammals...", "Cats purr."]])
    reranker.save_pretrained("reranker/"); KardReranker.from_pretrained("reranker/")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F

from kard_chain.io import share_like_other_files

Scoring = Literal["late_interaction", "cross_encoder"]


def reranker_text(title: str, text: str) -> str:
    """How a passage is shown to the reranker, in training and at inference alike."""
    return f"{title}: {text}" if title else text


class RerankerConfig(BaseModel):
    """What defines a reranker besides its encoder's weights."""

    model_config = ConfigDict(extra="forbid")

    scoring: Scoring = "late_interaction"
    """MaxSim over projected token embeddings, or a cross-encoder head."""
    dim: int = Field(default=128, ge=1)
    """Late interaction: size of the projected token embeddings."""
    max_question_tokens: int = Field(default=64, ge=4)
    """Questions are truncated to this many tokens."""
    max_passage_tokens: int = Field(default=256, ge=4)
    """Passages (or question + passage pairs) are truncated to this many tokens."""


class KardReranker(nn.Module):
    """A reranker over a Hugging Face encoder (see the module docstring)."""

    def __init__(self, encoder: Any, tokenizer: Any, config: RerankerConfig | None = None) -> None:
        super().__init__()
        self.encoder, self.tokenizer = encoder, tokenizer
        self.config = config or RerankerConfig()
        hidden = encoder.config.hidden_size
        if self.config.scoring == "late_interaction":
            self.head = nn.Linear(hidden, self.config.dim, bias=False)
        else:
            self.head = nn.Linear(hidden, 1)

    @classmethod
    def from_encoder(cls, name_or_path: str, config: RerankerConfig | None = None, **encoder_kwargs: Any) -> KardReranker:
        """A new reranker (fresh head) on a pretrained encoder from a folder or the hub."""
        from transformers import AutoModel, AutoTokenizer

        return cls(AutoModel.from_pretrained(name_or_path, **encoder_kwargs), AutoTokenizer.from_pretrained(name_or_path), config)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- encoding -------------------------------------------------------------------

    def _tokens(self, texts: list[str], max_length: int, pair: list[str] | None = None) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(texts, pair, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    def _embed(self, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self._tokens(texts, max_length)
        hidden = self.encoder(**batch).last_hidden_state
        return F.normalize(self.head(hidden), dim=-1), batch["attention_mask"].bool()

    def embed_questions(self, questions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Late interaction: normalised token embeddings ``(B, Lq, dim)`` and their mask."""
        return self._embed(questions, self.config.max_question_tokens)

    def embed_passages(self, passages: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Late interaction: normalised token embeddings ``(B, Lp, dim)`` and their mask."""
        return self._embed(passages, self.config.max_passage_tokens)

    # ---- scoring --------------------------------------------------------------------

    @staticmethod
    def maxsim(q: torch.Tensor, q_mask: torch.Tensor, p: torch.Tensor, p_mask: torch.Tensor) -> torch.Tensor:
        """MaxSim of one question ``(Lq, d)`` against passages ``(C, Lp, d)``: ``(C,)`` scores."""
        sim = torch.einsum("qd,cpd->cqp", q, p).masked_fill(~p_mask[:, None, :], -1e4)
        return (sim.max(-1).values * q_mask[None, :]).sum(-1)

    def forward(self, questions: list[str], candidates: list[list[str]] | None = None, *,
                shared: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores ``(B, C)`` of each question's candidate passages, padded to the longest
        list, and the mask of real candidates; or, with ``shared`` (late interaction only), of every question
        against the same passages, each encoded once (in-batch negatives)."""
        if shared is not None:
            if self.config.scoring != "late_interaction":
                raise ValueError("shared passages (in-batch negatives) need late_interaction scoring")
            q, q_mask = self.embed_questions(questions)
            p, p_mask = self.embed_passages(shared)
            scores = torch.stack([self.maxsim(q[i], q_mask[i], p, p_mask) for i in range(len(questions))])
            return scores, torch.ones_like(scores, dtype=torch.bool)
        if candidates is None:
            raise ValueError("pass candidates, or shared passages")
        width = max(len(c) for c in candidates)
        scores = torch.zeros(len(questions), width, device=self.device)
        mask = torch.zeros(len(questions), width, dtype=torch.bool, device=self.device)
        flat = [p for c in candidates for p in c]
        if self.config.scoring == "late_interaction":
            q, q_mask = self.embed_questions(questions)
            p, p_mask = self.embed_passages(flat)
            start = 0
            for i, c in enumerate(candidates):
                s = slice(start, start + len(c))
                scores[i, : len(c)] = self.maxsim(q[i], q_mask[i], p[s], p_mask[s])
                mask[i, : len(c)] = True
                start += len(c)
        else:
            firsts = [q for q, c in zip(questions, candidates) for _ in c]
            batch = self._tokens(firsts, self.config.max_passage_tokens, pair=flat)
            flat_scores = self.head(self.encoder(**batch).last_hidden_state[:, 0]).squeeze(-1)
            start = 0
            for i, c in enumerate(candidates):
                scores[i, : len(c)] = flat_scores[start : start + len(c)]
                mask[i, : len(c)] = True
                start += len(c)
        return scores, mask

    @torch.no_grad()
    def score(self, questions: list[str], candidates: list[list[str]]) -> list[list[float]]:
        """Inference scores of each question's candidates (no gradients, eval mode)."""
        was_training = self.training
        self.eval()
        try:
            scores, mask = self(questions, candidates)
        finally:
            self.train(was_training)
        return [row[m].tolist() for row, m in zip(scores, mask)]

    @torch.no_grad()
    def init_head_from(self, passages: list[str], batch_size: int = 32) -> None:
        """Late interaction: set the projection to the leading principal directions of the encoder's token vectors
        over ``passages`` (uncentred), so that MaxSim starts near the pretrained encoder's own token similarities
        instead of a random projection's. With ``dim`` at least the hidden size, the projection is the identity."""
        if self.config.scoring != "late_interaction":
            raise ValueError("init_head_from: only the late-interaction projection has directions to set")
        hidden = self.head.in_features
        weight = torch.zeros(self.config.dim, hidden)
        if self.config.dim >= hidden:
            weight[:hidden] = torch.eye(hidden)
        else:
            if not passages:
                raise ValueError("init_head_from: no passages to take the directions from")
            moment = torch.zeros(hidden, hidden, dtype=torch.float64)
            for lo in range(0, len(passages), batch_size):
                batch = self._tokens(passages[lo : lo + batch_size], self.config.max_passage_tokens)
                states = self.encoder(**batch).last_hidden_state[batch["attention_mask"].bool()].double().cpu()
                moment += states.T @ states
            _, vectors = torch.linalg.eigh(moment)  # ascending eigenvalues
            weight = vectors[:, -self.config.dim :].flip(-1).T.float()
        self.head.weight.copy_(weight.to(self.head.weight.device))

    # ---- persistence ----------------------------------------------------------------

    def fingerprint(self) -> str:
        """A short hash of every weight (the encoder's and the head's): stored passage vectors name the weights that
        made them."""
        import hashlib

        h = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()[:16]

    def save_pretrained(self, path: str | Path) -> None:
        """Write ``reranker.json``, ``head.safetensors`` and ``encoder/``."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(path / "encoder")
        self.tokenizer.save_pretrained(path / "encoder")
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, path / "head.safetensors")
        (path / "reranker.json").write_text(self.config.model_dump_json(indent=2))
        share_like_other_files(path)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> KardReranker:
        """Load a folder written by :meth:`save_pretrained` (safetensors only, no pickle)."""
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        path = Path(path)
        config = RerankerConfig(**json.loads((path / "reranker.json").read_text()))
        model = cls(AutoModel.from_pretrained(path / "encoder"), AutoTokenizer.from_pretrained(path / "encoder"), config)
        model.head.load_state_dict(load_file(path / "head.safetensors"))
        return model.to(device)
