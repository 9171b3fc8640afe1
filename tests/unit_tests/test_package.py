import subprocess
import sys

import kard_chain


def test_public_api():
    assert kard_chain.__all__ == [
        "BM25Index", "BM25Params", "BM25Retriever", "BM25Tokenizer", "ChromaRetriever", "DecoderLLM", "Example",
        "HashingEmbeddings", "HuggingFaceChatModel", "KardDataError", "KardReranker", "KardRerankerCompressor", "Passage",
        "PassageVectors", "Rationale", "RationaleCache", "RerankingRetriever", "StudentFormatter", "StudentTrainingConfig",
        "T5LLM", "TeacherRecord", "answer_tool", "build_index", "build_kard_chain", "build_rd_chain", "build_teacher_chain",
        "dataset_names", "load_dataset", "load_passages", "load_teacher_prompts", "train_student",
    ]
    for name in kard_chain.__all__:
        assert getattr(kard_chain, name) is not None


def test_import_is_light():
    code = "import sys, kard_chain; kard_chain.BM25Retriever; kard_chain.build_teacher_chain; kard_chain.RerankingRetriever; kard_chain.build_kard_chain; kard_chain.T5LLM; kard_chain.StudentTrainingConfig; print(sorted(m for m in ('torch', 'transformers', 'chromadb') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
