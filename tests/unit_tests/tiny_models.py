"""Tiny models built from configs, with tokenizers trained on the fly (no download)."""

from kard_chain.reranker.model import KardReranker, RerankerConfig
from kard_chain.testing.scratch_models import scratch_bert


def tiny_encoder(words, dropout=0.1):
    """A 2-layer BERT and a word-level tokenizer over ``words``."""
    return scratch_bert([" ".join(words)], dropout=dropout)


def tiny_reranker(scoring, words):
    """A KardReranker (projection or head of 32) on :func:`tiny_encoder`."""
    return KardReranker(*tiny_encoder(words), RerankerConfig(scoring=scoring, dim=32))
