"""The reranker trainer's config: one pydantic model, from flags or a JSON file (light to import: the CLI
reads its fields for ``--help``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from kard_chain.reranker.targets import TargetQueries, TargetScorer
from kard_chain.training.config import TrainingConfig


class RerankerTrainingConfig(TrainingConfig):
    """Everything a reranker training run needs."""

    encoder: str
    """Hugging Face encoder (folder or hub name) to start from."""
    candidates: Path
    """Candidate store (``build_candidates``)."""
    index: Path
    """BM25 index folder holding the passages (and scoring BM25(question) for evaluation)."""
    scoring: Literal["late_interaction", "cross_encoder"] = "late_interaction"
    """late_interaction (MaxSim over token vectors; passages can be pre-encoded) or cross_encoder."""
    dim: int = Field(default=128, ge=1)
    """Size of the token vectors (late interaction)."""
    loss: Literal["kl", "ce"] = "kl"
    """kl: to softmax(BM25(rationale, d) / tau) over the candidates (or the target_queries' mixture); ce: on the
    target's top passage."""
    target_temperature: float = Field(default=1.0, gt=0)
    """Temperature of softmax(BM25(rationale, d) / tau) (the KL target)."""
    target_queries: TargetQueries = "rationale"
    """The queries that score the candidates for the target: the whole rationale (KARD's), each of its sentences
    (the target the mean of their softmaxes), or the question joined with each sentence (kard_chain.reranker.targets)."""
    target_scorer: TargetScorer = "bm25"
    """bm25: BM25(query, passage), KARD's; bm25+dense: z(BM25) + z(cosine of target_encoder's mean-pooled embeddings)
    over each set's candidates (standardised scores: a target_temperature near 0.5 suits them)."""
    target_encoder: str | None = None
    """The sentence encoder of the bm25+dense target (default: ``encoder``, which for the packaged MiniLM is one)."""
    score_temperature: float = Field(default=1.0, gt=0)
    """Temperature of the reranker's softmax."""
    candidates_per_set: int = Field(default=8, ge=2)
    """Candidates sampled per set each step (the rationale's best passage always among them); 8 keeps one epoch
    over StrategyQA within 30 minutes on 2 CPU cores (docs/results-real-data.md)."""
    in_batch_negatives: bool = False
    """Score each question against every passage sampled for the batch (late interaction: each passage encoded once),
    the targets by BM25 of its own rationale over all of them: batch_size x candidates_per_set candidates a question."""
    rationale_share: float = Field(default=0.5, ge=0, le=1)
    """Share of the sampled candidates drawn from the rationale-retrieved passages."""
    head_init: Literal["random", "pca"] = "random"
    """The late-interaction projection at the start: random, or the leading principal directions of the encoder's
    token vectors over 256 training passages (MaxSim then starts near the pretrained encoder's own)."""
    learning_rate: float = Field(default=2e-5, gt=0, allow_inf_nan=False)
    """Peak learning rate of the encoder."""
    head_learning_rate: float = Field(default=1e-3, gt=0, allow_inf_nan=False)
    """The new projection or head learns faster than the pretrained encoder."""
    weight_decay: float = Field(default=0.01, ge=0, allow_inf_nan=False)
    """AdamW's decoupled weight decay."""
    warmup_ratio: float = Field(default=0.1, ge=0, le=1)
    """Share of the steps spent warming the learning rate up."""
    save_every: int = Field(default=200, ge=1)
    """A checkpoint every this many optimiser steps (the run resumes from the last one)."""
    eval_fraction: float = Field(default=0.1, ge=0, lt=1)
    """Share of examples held out for evaluation (by a hash of the example id)."""
    lora_r: int | None = Field(default=None, ge=1)
    """Train LoRA adapters of this rank (peft) instead of the whole encoder; merged into it at the end."""
    lora_alpha: int = 16
    """LoRA scaling."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA adapters."""
    lora_target_modules: list[str] | None = None
    """Modules that get adapters (default: peft's choice for the architecture)."""
    freeze_layers: int = Field(default=0, ge=0)
    """The embeddings and this many lower encoder layers stay as pretrained (cheaper steps: no gradients there)."""
    attention_dropout: float | None = Field(default=0.0, ge=0, lt=1)
    """Dropout on the encoder's attention weights while training; 0 lets PyTorch's fused attention run (half the
    memory, faster steps: docs/guide.md); None keeps the encoder's own (MiniLM: 0.1)."""
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """auto: bf16 on a GPU that has it, fp16 on other GPUs, bf16 on a CPU with native bf16 instructions (AVX512-BF16,
    AMX), none on other CPUs."""
    max_question_tokens: int = Field(default=64, ge=1)
    """Questions are truncated to this many tokens."""
    max_passage_tokens: int = Field(default=128, ge=1)
    """Passages are truncated to this many tokens (StrategyQA's paragraphs: median 116)."""

    @model_validator(mode="after")
    def _in_batch_needs_late_interaction(self) -> RerankerTrainingConfig:
        if self.in_batch_negatives and self.scoring != "late_interaction":
            raise ValueError("in_batch_negatives needs scoring='late_interaction' (a cross-encoder reads each question "
                             "with each passage: nothing is shared across the batch)")
        return self
