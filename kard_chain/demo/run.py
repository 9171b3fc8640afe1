"""``kard demo``: the whole method end to end on a synthetic world, offline, on a CPU, in minutes.

    kard demo --size small --out demo/        # the same as: kard run recipes/demo-small.toml out=demo/

A shortcut to the demo's recipe (``recipes/demo-{size}.toml``): world -> BM25 index and Chroma store ->
teacher rationales -> reranker candidates and training -> three students of one size and one budget
(FT, RD, KARD; KARD answered over BM25, its draft, the bridge round, the reranker and the reranker with the
bridge round) -> evaluation on test entities never seen in training -> knowledge editing ->
``results.md``, ``results.json`` and ``results.png``. Each flag is a recipe override; stages already
done for the same settings are reused (:mod:`kard_chain.recipe`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable

from kard_chain.demo.world import World
from kard_chain.recipe.stages import REFERENCE_TEACHER
from kard_chain.recipe.stages import reference_teacher as _reference_teacher
from kard_chain.records import Example, Rationale

__all__ = ["REFERENCE_TEACHER", "demo_overrides", "reference_teacher", "run_demo"]


def reference_teacher(world: World) -> Runnable[Example, list[Rationale]]:
    """A Runnable with the teacher chain's output: the world's reference rationales for an example, each ending in
    its answer, labelled ``model="reference rationales (offline demo teacher)"``."""
    chain = _reference_teacher(REFERENCE_TEACHER)
    return (lambda e: e.model_copy(update={"metadata": {**e.metadata, "rationales": world.rationales[e.id]}})) | chain


def demo_overrides(out: str | Path | None = None, *, seed: int | None = None, steps: int | None = None, n: int | None = None,
                   teacher: str | None = None, base_url: str | None = None, teacher_n: int | None = None,
                   chroma: bool | None = None, passages_from: str | None = None, counterfactual: int | None = None,
                   yes_no_counterfactual: bool | None = None, answer_weight: float | None = None,
                   bridge: bool | None = None) -> list[str]:
    """The recipe overrides that ``kard demo``'s flags stand for (``None``: the recipe's value)."""
    import json

    values = {"out": str(out) if out is not None else None, "seed": seed, "students.max_steps": steps, "evaluation.n": n,
              "teacher.model": teacher, "teacher.base_url": base_url, "teacher.n": teacher_n, "knowledge.chroma": chroma,
              "students.reading.passages_from": passages_from, "students.reading.counterfactual": counterfactual,
              "students.reading.yes_no_counterfactual": yes_no_counterfactual, "students.answer_weight": answer_weight,
              "students.reading.bridge": bridge}
    return [f"{key}={json.dumps(value)}" for key, value in values.items() if value is not None]


def run_demo(out: str | Path | None = None, size: str = "small", *, show_progress: bool = True,
             log: Callable[[str], None] = print, **flags: Any) -> dict:
    """Run the demo's recipe for ``size`` into ``out`` (default ``kard-demo-SIZE``) and return its results;
    ``flags`` are :func:`demo_overrides`' keywords."""
    from kard_chain.recipe import load_recipe, run_recipe
    from kard_chain.recipe.loading import packaged_recipe

    recipe = load_recipe(packaged_recipe(f"demo-{size}"), demo_overrides(out, **flags))
    return run_recipe(recipe, show_progress=show_progress, log=log)
