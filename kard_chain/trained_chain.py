"""One call from trained folders to the chain that serves them, with the settings the student was trained with.

    from kard_chain import load_kard_chain
    chain = load_kard_chain("student/final", "index/")                         # KARD over BM25(question)
    chain = load_kard_chain("student/final", "index/", reranker="reranker/final", vectors="vectors/")
    chain.invoke("Could a goat be a source of cheese?")

The method, ``k``, prompt variant, passage budget and input truncation come from the student's
``kard_student.json`` (see :mod:`kard_chain.student.settings`); keyword overrides change the
serving knobs (``n``, ``temperature``, ``k``...). An RD or FT student gets the chain without
retrieval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable

from kard_chain.errors import KardDataError
from kard_chain.recipe.graph import RUN_FILE
from kard_chain.student.reading import FIRST_STAGE_WEIGHT, reading_retriever
from kard_chain.student.settings import StudentSettings, read_student_settings

__all__ = ["FIRST_STAGE_WEIGHT", "load_kard_chain", "load_student_llm"]

LLM_FIELDS = ("n", "max_new_tokens", "temperature", "top_p", "top_k", "do_sample", "batch_size")
"""Overrides that go to the student LLM."""
OVERRIDES = (*LLM_FIELDS, "k", "candidates", "first_stage_weight", "draft", "bridge", "method", "device", "dtype")


def _check_overrides(overrides: dict[str, Any]) -> None:
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise TypeError(f"unknown override(s) {unknown}; known: {list(OVERRIDES)}")


def load_student_llm(student: str | Path, settings: StudentSettings | None = None, **overrides: Any):
    """The student folder as a LangChain LLM (:class:`Seq2SeqStudentLLM` or :class:`CausalStudentLLM` by its config), its
    inputs truncated as in training."""
    from transformers import AutoConfig

    from kard_chain.student.llm import CausalStudentLLM, Seq2SeqStudentLLM

    settings = settings or read_student_settings(student)
    seq2seq = bool(getattr(AutoConfig.from_pretrained(str(student)), "is_encoder_decoder", False))
    fields = {k: v for k, v in overrides.items() if k in LLM_FIELDS and v is not None}
    return (Seq2SeqStudentLLM if seq2seq else CausalStudentLLM).from_pretrained(
        student, device=overrides.get("device"), dtype=overrides.get("dtype"), max_input_tokens=settings.max_source_tokens, **fields
    )


def _from_run(out: Path, index: Any, reranker: Any, overrides: dict[str, Any]) -> tuple[Path, Any, Any, dict[str, Any]]:
    """A finished recipe's KARD student (else its last student), index and reranker, served as its evaluation was."""
    import json

    run = json.loads((out / RUN_FILE).read_text())
    stages, recipe = run["stages"], run["recipe"]
    method = next((m for m in ("kard", "rd", "ft") if f"student-{m}" in stages), None)
    final = Path(stages[f"student-{method}"]["folder"]) / "run" / "final" if method else None
    if final is None or not (final / "kard_student.json").is_file():
        raise KardDataError("this run has no trained student yet: run the recipe to the end first (kard run RECIPE)", path=out)
    evaluation = recipe["evaluation"]
    if index is None and method == "kard":
        index = Path(stages["index"]["folder"]) / "index"
    if reranker is None and method == "kard" and "reranker" in stages and any(v.startswith("reranker") for v in evaluation["serve"]):
        reranker = Path(stages["reranker"]["folder"]) / "run" / "final"
        overrides.setdefault("candidates", evaluation["candidates"])
        overrides.setdefault("first_stage_weight", evaluation["first_stage_weight"])
    for key in ("n", "temperature", "max_new_tokens"):
        overrides.setdefault(key, evaluation[key])
    return final, index, reranker, overrides


def load_kard_chain(
    student: str | Path | Any,
    index: str | Path | BaseRetriever | None = None,
    reranker: str | Path | Any | None = None,
    vectors: str | Path | Any | None = None,
    served_by: Any = None,
    **overrides: Any,
) -> Runnable:
    """The chain a trained student calls for: KARD over ``index`` (reranked when ``reranker`` is given), or the
    RD/FT chain without retrieval.

    ``student`` is a folder saved by ``kard train-student`` (or a :class:`Seq2SeqStudentLLM` loaded from one), or a
    ``kard run`` output folder: its KARD student over its index, reranked where the recipe served a reranker;
    ``index`` a BM25 index folder or any LangChain retriever (the first stage); ``reranker`` a
    trained reranker folder or :class:`KardReranker`; ``vectors`` its stored passage vectors; ``served_by`` any
    LangChain LLM or chat model serving the folder's weights (``OpenAI(base_url=...)`` in front of ``vllm serve
    FOLDER``): the folder then gives the settings and the tokenizer, and no weights are loaded here.
    Overrides: ``n``, ``temperature``, ``max_new_tokens``, ``top_p``, ``top_k``, ``do_sample``,
    ``batch_size``, ``device``, ``dtype``, ``k`` (passages read), ``candidates`` (first-stage
    passages for the reranker, default 100), ``first_stage_weight`` (z(BM25) beside z(reranker),
    default 0.2; 0 ranks by the reranker alone), ``draft`` (a second retrieval round with the student's draft:
    ``"draft"`` or ``"question+draft"``, see :func:`~kard_chain.chains.build_kard_chain`), ``bridge`` (a second round
    with the first passage's rarest new term, :class:`~kard_chain.retrievers.bridge.BridgeRetriever`; default: as the student was trained; ``index`` must then be a BM25 index) and ``method``/``k`` for a folder without settings.
    """
    from kard_chain.chains import build_kard_chain, build_rd_chain
    from kard_chain.student.format import StudentFormatter

    _check_overrides(overrides)
    unused = sorted(k for k in (*LLM_FIELDS, "device", "dtype") if overrides.get(k) is not None and k != "n")
    if served_by is not None and unused:
        raise TypeError(f"{unused} set the in-process student: set them on the served model instead")
    if isinstance(student, (str, Path)) and (Path(student) / RUN_FILE).is_file():
        student, index, reranker, overrides = _from_run(Path(student), index, reranker, overrides)
    folder = Path(student if isinstance(student, (str, Path)) else student.model_id)
    try:
        settings = read_student_settings(folder)
    except KardDataError:
        method = overrides.get("method")
        if method is None or (method == "kard" and overrides.get("k") is None):  # k means nothing without passages
            raise
        settings = StudentSettings()
    else:
        if overrides.get("method") not in (None, settings.method):
            raise KardDataError(f"this student was trained as {settings.method!r} (kard_student.json): method "
                                f"{overrides['method']!r} is only for folders without saved settings", path=folder)
    if reranker is None and overrides.get("first_stage_weight") is not None:
        raise ValueError("first_stage_weight weighs BM25 beside a reranker: give a reranker too, or leave it out")
    chosen = {key: overrides[key] for key in ("method", "k") if overrides.get(key) is not None}
    settings = StudentSettings.model_validate({**settings.model_dump(), **chosen})
    if served_by is not None:
        from transformers import AutoTokenizer

        llm, tokenizer = served_by, AutoTokenizer.from_pretrained(str(folder))  # the passage budget counts its tokens
    else:
        llm = load_student_llm(folder, settings, **overrides) if isinstance(student, (str, Path)) else student
        tokenizer = getattr(llm, "tokenizer", None)
    n = overrides.get("n") or 5
    formatter = StudentFormatter.from_settings(settings, tokenizer)
    if settings.method != "kard":
        return build_rd_chain(llm, n=n, formatter=formatter)
    if index is None:
        raise KardDataError(f"the student in {folder} reads passages ({settings.method}, k={settings.k}): give an index")
    retriever = reading_retriever(settings, index, reranker=reranker, vectors=vectors, candidates=overrides.get("candidates"),
                                  first_stage_weight=overrides.get("first_stage_weight"), bridge=overrides.get("bridge"))
    return build_kard_chain(retriever, llm, k=settings.k, n=n, formatter=formatter, draft=overrides.get("draft"))

