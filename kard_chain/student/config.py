"""The student trainer's config: one pydantic model, from flags or a JSON file (light to import: the CLI
reads its fields for ``--help``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from kard_chain.student.settings import Method, PassagesFrom
from kard_chain.training.config import TrainingConfig


class StudentTrainingConfig(TrainingConfig):
    """Everything a student training run needs."""

    IMPLIED_BEFORE: ClassVar[dict[str, Any]] = {"passages_from": "rationale", "counterfactual": 0, "yes_no_counterfactual": False,
                                                  "bridge": False, "answer_weight": 1.0}
    """Fields that runs made before they existed did not record, with the value those runs used: a run at that value
    resumes their folders."""

    model: str
    """Model to start from (folder or hub name): seq2seq (T5) or decoder-only."""
    method: Method = "kard"
    """kard (question + passages -> rationale + answer), rd (no passages) or ft (question -> answer)."""
    dataset: str | None = None
    """Dataset name (strategyqa, medqa, obqa, jsonl); not needed when ``pairs`` is given."""
    data_dir: Path | None = None
    """Dataset folder or file."""
    split: str = "train"
    """Dataset split to train on."""
    rationales: Path | None = None
    """Teacher cache (``kard teach --out``)."""
    reference: bool = False
    """Also train on the dataset's reference rationales."""
    index: Path | None = None
    """BM25 index queried with each rationale (kard)."""
    pairs: Path | None = None
    """Ready training pairs (JSONL of StudentPair) instead of dataset + rationales + index."""
    k: int = Field(default=3, ge=1)
    """Passages per input (kard)."""
    passages_from: PassagesFrom = "rationale"
    """kard: retrieve each input's passages with the rationale (the paper's), the question (as at inference), or mixed
    (the rationale's best passage among the question's top k - 1, shuffled)."""
    counterfactual: int = Field(default=0, ge=0)
    """kard: per multiple-choice pair, this many more with the gold option's text swapped for another option's in the
    passages and rationale and the answer relabelled, so that reading beats recalling (0: the paper's data)."""
    yes_no_counterfactual: bool = False
    """kard: yes/no pairs get ``counterfactual`` copies too, where the question has a value slot (a word that other
    training questions of its template ask instead, e.g. a colour) and the rationale states one: the stated value is
    swapped so that one copy flips the answer (:func:`kard_chain.student.augment.yes_no_counterfactuals`)."""
    bridge: bool = False
    """kard: every retrieval of the inputs' passages takes a second, bridge round (:mod:`kard_chain.retrievers.bridge`),
    as a chain served with ``bridge`` does; saved with the student, so serving repeats it."""
    answer_weight: float = Field(default=1.0, gt=0)
    """Loss weight of the target's final answer tokens ("So the answer is" + answer), 1 on the rationale's: above 1,
    the answer counts more than its few tokens would (after Hsieh et al., 2023, "Distilling Step-by-Step", which
    weighs the label and rationale losses); 1: plain cross-entropy, the paper's."""
    prompt: str = "default"
    """Student prompt variant (``prompts/student/{prompt}.toml``)."""
    prompts_dir: Path | None = None
    """Folder of your own student prompt files."""
    max_passage_tokens: int = Field(default=384, ge=1)
    """Token budget the passages share in the input."""
    max_source_tokens: int = Field(default=512, ge=8)
    """Inputs are truncated to this many tokens (serving truncates the same way)."""
    max_target_tokens: int = Field(default=128, ge=2)
    """Targets are truncated to this many tokens."""
    epochs: int = Field(default=3, ge=1)
    """Passes over the training pairs (unless ``max_steps`` is set)."""
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """auto: bf16 on a GPU that has it, fp16 on other GPUs, none on CPU."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, more time)."""

    @model_validator(mode="after")
    def _has_data(self) -> StudentTrainingConfig:
        if self.pairs is None:
            if self.dataset is None or self.data_dir is None:
                raise ValueError("give pairs, or dataset and data_dir")
            if self.method != "ft" and self.rationales is None and not self.reference:
                raise ValueError(f"method {self.method!r} needs rationales (a teacher cache) or reference=true")
            if self.method == "kard" and self.index is None:
                raise ValueError("method 'kard' needs an index to retrieve passages with the rationales")
        return self
