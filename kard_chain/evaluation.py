"""Running an answering chain over a dataset split: per-example records and accuracy with a 95% interval.

    summary = evaluate_chain(chain, examples, "results.jsonl")   # resumable: finished ids are skipped
    print(summary.format())   # accuracy 0.712 (95% CI 0.661-0.758) on 301 examples
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from kard_chain.errors import KardDataError
from kard_chain.jsonl_store import JsonlStore
from kard_chain.manifest import Manifest, output_lock, prepare_output
from kard_chain.metrics import wilson_interval
from kard_chain.progress import progress
from kard_chain.records import Example


class EvaluationRecord(BaseModel):
    """One answered example."""

    model_config = ConfigDict(extra="forbid")

    id: str
    question: str
    gold: str | None
    answer: str | None
    votes: dict[str, int]
    passage_ids: list[str]
    correct: bool
    rationales: list[str] = []
    passage_texts: list[str] = []
    """What the student read, as it read it (beside ``passage_ids``: an index can change under the same ids)."""


@dataclass
class EvaluationSummary:
    """Accuracy over the evaluated examples, with its 95% Wilson interval."""

    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.total)

    def format(self) -> str:
        low, high = self.interval
        return f"accuracy {self.accuracy:.3f} (95% CI {low:.3f}-{high:.3f}) on {self.total} examples"


def _seed_batch(seed: int | None, position: int) -> None:
    """Seed torch's generator for the batch that starts at ``position`` of the examples (where torch is loaded)."""
    import sys

    if seed is not None and "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed * 1_000_003 + position)


def evaluate_chain(
    chain: Any, examples: Sequence[Example], out: str | Path, *, batch_size: int = 8, show_progress: bool = True,
    settings: dict[str, Any] | None = None, overwrite: bool = False, seed: int | None = None,
) -> EvaluationSummary:
    """Answer every example with ``chain`` (a KARD or RD chain), append one record per example to
    ``out`` (a rerun skips finished ids) and return the accuracy over all of them.

    ``settings`` (the student, the retriever, sampling...) are ``out``'s manifest: a rerun with
    others is refused instead of reporting the earlier run's answers (``overwrite`` starts over).
    ``seed``: batches are cut at fixed positions of ``examples`` and each is sampled from its own seed, so an
    evaluation resumed after a kill answers as an uninterrupted one would."""
    if not examples:
        raise ValueError("no examples to evaluate")
    if Path(out).is_dir():
        raise KardDataError("is a folder: the evaluation's output is one JSONL file (e.g. eval.jsonl)", path=out)
    with output_lock(out):  # taken before the manifest is read: a second writer (--overwrite too) is refused
        if settings is not None:
            prepare_output(out, Manifest("evaluation", settings), folder=False, overwrite=overwrite)
        with JsonlStore.open(out, EvaluationRecord) as store:
            todo = [e for e in examples if e.id not in store]
            bar = progress(total=len(examples), initial=len(examples) - len(todo), desc="evaluate", unit=" q", disable=not show_progress)
            for lo in range(0, len(examples), batch_size):
                batch = [e for e in examples[lo : lo + batch_size] if e.id not in store]
                if not batch:
                    continue
                _seed_batch(seed, lo)
                for e, r in zip(batch, chain.batch(batch)):
                    store.append(EvaluationRecord(
                        id=e.id, question=e.question, gold=e.answer, answer=r["answer"], votes=r["votes"],
                        passage_ids=[p["id"] for p in r["passages"]], passage_texts=[p["text"] for p in r["passages"]],
                        correct=r["answer"] is not None and r["answer"] == e.answer, rationales=[x["text"] for x in r["rationales"]],
                    ))
                bar.update(len(batch))
            bar.close()
            done = [store.records[e.id] for e in examples if e.id in store.records]
        return EvaluationSummary(correct=sum(r.correct for r in done), total=len(done))
