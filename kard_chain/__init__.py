"""kard-chain: Knowledge-Augmented Reasoning Distillation (KARD) as LangChain building blocks.

Public names load lazily, so ``import kard_chain`` stays light (no torch, no transformers).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {  # public name -> module: the one list of what kard_chain exports
    "BM25Index": "kard_chain.bm25.index",
    "BM25Params": "kard_chain.bm25.index",
    "BM25Retriever": "kard_chain.retrievers.bm25",
    "BM25Tokenizer": "kard_chain.bm25.tokenizer",
    "BridgeRetriever": "kard_chain.retrievers.bridge",
    "ChromaRetriever": "kard_chain.retrievers.chroma",
    "CausalStudentLLM": "kard_chain.student.llm",
    "Example": "kard_chain.records",
    "HashingEmbeddings": "kard_chain.embeddings",
    "HuggingFaceChatModel": "kard_chain.teacher.huggingface",
    "HybridRetriever": "kard_chain.retrievers.hybrid",
    "KardDataError": "kard_chain.errors",
    "KardReranker": "kard_chain.reranker.model",
    "KardRerankerCompressor": "kard_chain.retrievers.reranking",
    "Passage": "kard_chain.records",
    "PassageVectors": "kard_chain.reranker.vectors",
    "Rationale": "kard_chain.records",
    "RationaleCache": "kard_chain.teacher.cache",
    "RerankerTrainingConfig": "kard_chain.reranker.config",
    "RerankingRetriever": "kard_chain.retrievers.reranking",
    "StudentChatModel": "kard_chain.student.chat",
    "StudentFormatter": "kard_chain.student.format",
    "StudentTrainingConfig": "kard_chain.student.config",
    "Seq2SeqStudentLLM": "kard_chain.student.llm",
    "TeacherRecord": "kard_chain.teacher.cache",
    "TransformerEmbeddings": "kard_chain.embeddings",
    "answer_tool": "kard_chain.chains",
    "build_index": "kard_chain.bm25.index",
    "build_kard_chain": "kard_chain.chains",
    "build_rd_chain": "kard_chain.chains",
    "build_teacher_chain": "kard_chain.teacher.chain",
    "dataset_names": "kard_chain.datasets",
    "knowledge_middleware": "kard_chain.agent_tools",
    "load_dataset": "kard_chain.datasets",
    "load_kard_chain": "kard_chain.trained_chain",
    "load_passages": "kard_chain.knowledge",
    "load_teacher_prompts": "kard_chain.teacher.prompts",
    "retrieval_tool": "kard_chain.agent_tools",
    "train_reranker": "kard_chain.reranker.trainer",
    "train_student": "kard_chain.student.trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in ("T5LLM", "DecoderLLM"):  # renamed: importable, with a DeprecationWarning, until the next release
        return getattr(importlib.import_module("kard_chain.student.llm"), name)
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kard_chain' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
