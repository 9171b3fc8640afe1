import subprocess
import sys

import pytest

import kard_chain


def test_public_api():
    assert kard_chain.__all__ == [
        "BM25Index", "BM25Params", "BM25Retriever", "BM25Tokenizer", "BridgeRetriever", "CausalStudentLLM", "ChromaRetriever", "Example",
        "HashingEmbeddings", "HuggingFaceChatModel", "HybridRetriever", "KardDataError", "KardReranker",
        "KardRerankerCompressor", "Passage", "PassageVectors", "Rationale", "RationaleCache", "RerankerTrainingConfig",
        "RerankingRetriever", "Seq2SeqStudentLLM", "StudentChatModel", "StudentFormatter", "StudentTrainingConfig", "TeacherRecord", "TransformerEmbeddings",
        "answer_tool", "build_index", "build_kard_chain", "build_rd_chain", "build_teacher_chain", "dataset_names",
        "knowledge_middleware", "load_dataset", "load_kard_chain", "load_passages", "load_teacher_prompts", "retrieval_tool",
        "train_reranker", "train_student",
    ]
    for name in kard_chain.__all__:
        assert getattr(kard_chain, name) is not None


def test_the_old_student_names_still_import_with_a_deprecation_warning():
    from kard_chain.student import llm

    for old, new in (("T5LLM", "Seq2SeqStudentLLM"), ("DecoderLLM", "CausalStudentLLM")):
        with pytest.warns(DeprecationWarning, match=f"{old} is now {new}"):
            assert getattr(kard_chain, old) is getattr(llm, new)
        with pytest.warns(DeprecationWarning):
            getattr(llm, old)  # what "from kard_chain.student.llm import OLD" asks
        assert old not in kard_chain.__all__


def test_import_is_light():
    code = "import sys, kard_chain; kard_chain.BM25Retriever; kard_chain.build_teacher_chain; kard_chain.RerankingRetriever; kard_chain.build_kard_chain; kard_chain.Seq2SeqStudentLLM; kard_chain.StudentTrainingConfig; print(sorted(m for m in ('torch', 'transformers', 'chromadb') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_serving_imports_no_training_module():
    # the inference chain, the trained-chain loader and the retrievers stand below training, never on it
    code = ("import sys, kard_chain.chains, kard_chain.trained_chain, kard_chain.retrievers.reranking, kard_chain.student.llm; "
            "print(sorted(m for m in sys.modules if m.startswith(('kard_chain.training', 'kard_chain.student.trainer', "
            "'kard_chain.reranker.trainer', 'kard_chain.demo'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_module_imports_another_modules_private_name():
    import ast
    from pathlib import Path

    root = Path(kard_chain.__file__).parent
    private = []
    for file in root.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kard_chain"):
                private += [f"{file.relative_to(root)}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert private == []


def test_teacher_and_student_do_not_import_each_other():
    import ast
    from pathlib import Path

    root = Path(kard_chain.__file__).parent

    def imported(package: str) -> set[str]:
        found = set()
        for file in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    found.add(node.module)
        return found

    assert not any(m.startswith("kard_chain.student") for m in imported("teacher"))
    assert not any(m.startswith("kard_chain.teacher.chain") or m.startswith("kard_chain.teacher.runner") for m in imported("student"))


def test_the_command_line_parser_imports_nothing_heavy():
    # `kard --help` answers in about 0.16 s on 2 cores because building the parser loads no model library
    code = ("import sys, kard_chain.cli; kard_chain.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'langchain_core', 'numpy', 'chromadb', 'tqdm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
