"""kard-chain: Knowledge-Augmented Reasoning Distillation (KARD) as LangChain building blocks.

Public names load lazily, so ``import kard_chain`` stays light (no torch, no transformers).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "BM25Index": "kard_chain.bm25_index",
    "BM25Params": "kard_chain.bm25_index",
    "BM25Retriever": "kard_chain.retrievers.bm25",
    "BM25Tokenizer": "kard_chain.tokenizer",
    "DecoderLLM": "kard_chain.student_llm",
    "StudentFormatter": "kard_chain.student_format",
    "StudentTrainingConfig": "kard_chain.student_trainer",
    "T5LLM": "kard_chain.student_llm",
    "answer_tool": "kard_chain.chains",
    "build_kard_chain": "kard_chain.chains",
    "build_rd_chain": "kard_chain.chains",
    "train_student": "kard_chain.student_trainer",
    "ChromaRetriever": "kard_chain.retrievers.chroma",
    "Example": "kard_chain.records",
    "HashingEmbeddings": "kard_chain.embeddings",
    "KardDataError": "kard_chain.errors",
    "KardReranker": "kard_chain.reranker_model",
    "KardRerankerCompressor": "kard_chain.retrievers.reranking",
    "PassageVectors": "kard_chain.passage_vectors",
    "RerankingRetriever": "kard_chain.retrievers.reranking",
    "Passage": "kard_chain.records",
    "Rationale": "kard_chain.records",
    "HuggingFaceChatModel": "kard_chain.chat_models.huggingface",
    "RationaleCache": "kard_chain.rationale_cache",
    "TeacherRecord": "kard_chain.rationale_cache",
    "build_index": "kard_chain.bm25_index",
    "build_teacher_chain": "kard_chain.teacher",
    "load_teacher_prompts": "kard_chain.prompts",
    "dataset_names": "kard_chain.datasets",
    "load_dataset": "kard_chain.datasets",
    "load_passages": "kard_chain.knowledge",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from kard_chain.bm25_index import BM25Index, BM25Params, build_index
    from kard_chain.chains import answer_tool, build_kard_chain, build_rd_chain
    from kard_chain.student_format import StudentFormatter
    from kard_chain.student_llm import DecoderLLM, T5LLM
    from kard_chain.student_trainer import StudentTrainingConfig, train_student
    from kard_chain.chat_models.huggingface import HuggingFaceChatModel
    from kard_chain.prompts import load_teacher_prompts
    from kard_chain.rationale_cache import RationaleCache, TeacherRecord
    from kard_chain.teacher import build_teacher_chain
    from kard_chain.datasets import dataset_names, load_dataset
    from kard_chain.embeddings import HashingEmbeddings
    from kard_chain.errors import KardDataError
    from kard_chain.knowledge import load_passages
    from kard_chain.passage_vectors import PassageVectors
    from kard_chain.reranker_model import KardReranker
    from kard_chain.retrievers.reranking import KardRerankerCompressor, RerankingRetriever
    from kard_chain.records import Example, Passage, Rationale
    from kard_chain.retrievers.bm25 import BM25Retriever
    from kard_chain.retrievers.chroma import ChromaRetriever
    from kard_chain.tokenizer import BM25Tokenizer


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kard_chain' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
