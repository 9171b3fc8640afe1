"""The student trainer's config: one pydantic model, from flags or a JSON file (light to import: the CLI
reads its fields for ``--help``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from kard_chain.student.settings import StudentSettings
from kard_chain.training.config import TrainingConfig


class StudentTrainingConfig(TrainingConfig, StudentSettings):
    """Everything a student training run needs: the settings serving repeats (:class:`StudentSettings`, declared
    there once), the data and the budget."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), use_attribute_docstrings=True)

    IMPLIED_BEFORE: ClassVar[dict[str, Any]] = {"passages_from": "rationale", "counterfactual": 0, "yes_no_counterfactual": False,
                                                  "bridge": False, "answer_weight": 1.0}
    """Fields that runs made before they existed did not record, with the value those runs used: a run at that value
    resumes their folders."""

    model: str
    """Model to start from (folder or hub name): seq2seq (T5) or decoder-only."""
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
    answer_weight: float = Field(default=1.0, gt=0)
    """Loss weight of the target's final answer tokens ("So the answer is" + answer), 1 on the rationale's: above 1,
    the answer counts more than its few tokens would (after Hsieh et al., 2023, "Distilling Step-by-Step", which
    weighs the label and rationale losses); 1: plain cross-entropy, the paper's."""
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
