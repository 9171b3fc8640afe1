"""``kard run``: a recipe's stages, planned, run or reused, and reported.

    from kard_chain.recipe import load_recipe, run_recipe
    results = run_recipe(load_recipe("recipes/demo-tiny.toml", ["seed=1"]))

Before any work the recipe's paths are checked and, where the teacher must be asked, an
``openai:`` teacher's server is reached; then the plan is printed (``dry_run`` stops there),
the stages run in order under a lock on ``out``, and ``out`` receives the report and ``run.json``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kard_chain.io import atomic_write_text, is_local_path
from kard_chain.recipe.config import Recipe
from kard_chain.recipe.graph import Context, execute, format_plan, locked, plan, write_run_file
from kard_chain.recipe.loading import RecipeError
from kard_chain.recipe.report import markdown, results, summary_screen, write_chart
from kard_chain.recipe.stages import build_stages, teacher_task


def check_paths(recipe: Recipe) -> None:
    """Every input path of the recipe exists; else a :class:`RecipeError` naming the key."""
    paths: dict[str, Path | None] = {"dataset.data_dir": recipe.dataset.data_dir, "dataset.test_file": recipe.dataset.test_file,
                                     "teacher.prompts_dir": recipe.teacher.prompts_dir}
    paths.update({f"knowledge.corpus[{i}]": p for i, p in enumerate(recipe.knowledge.corpus)})
    for key, spec in (("students.model", recipe.students.model), ("reranker.encoder", recipe.reranker.encoder)):
        if spec not in ("scratch-t5", "scratch-decoder", "smollm2", "auto", "scratch") and is_local_path(spec):
            paths[key] = Path(spec).expanduser()
    if recipe.teacher.model.startswith("hf:"):
        paths["teacher.model"] = Path(recipe.teacher.model[3:]).expanduser()
    for key, path in paths.items():
        if path is not None and not Path(path).exists():
            raise RecipeError(f"key '{key}': {path} does not exist (relative paths are read from {Path.cwd()})")
    if recipe.teacher.model != "reference":
        from kard_chain.teacher.prompts import load_teacher_prompts

        known = load_teacher_prompts(teacher_task(recipe), recipe.teacher.prompts_dir)
        if recipe.teacher.prompt not in known:
            raise RecipeError(f"key 'teacher.prompt': no variant {recipe.teacher.prompt!r} for task {teacher_task(recipe)!r}; "
                              f"available: {', '.join(sorted(known))}")
    if recipe.out.exists() and not recipe.out.is_dir():
        raise RecipeError(f"key 'out': {recipe.out} is a file, not a folder")
    if recipe.out.is_dir() and any(recipe.out.iterdir()) and not (recipe.out / "run.json").is_file() \
            and not (recipe.out / "stages").is_dir():
        raise RecipeError(f"key 'out': {recipe.out} holds files that kard run did not write; choose another folder")


def check_teacher(recipe: Recipe) -> None:
    """An ``openai:`` teacher's server answers (any HTTP status will do); else a :class:`RecipeError`."""
    url = recipe.teacher.base_url
    if not recipe.teacher.model.startswith("openai:") or not url:
        return
    try:
        urllib.request.urlopen(url.rstrip("/") + "/models", timeout=10).close()
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise RecipeError(f"key 'teacher.base_url': the teacher's server at {url} cannot be reached ({reason}); start it, or "
                          "correct the URL") from None


def run_recipe(recipe: Recipe, *, dry_run: bool = False, show_progress: bool = True,
               log: Callable[[str], None] = print) -> dict[str, Any]:
    """Plan the recipe's stages, run those not done (``dry_run``: only print the plan) and write the report;
    returns the results (``results.json``), or ``{"plan": [...]}`` for a dry run."""
    check_paths(recipe)
    planned = plan(recipe, build_stages(recipe))
    log(f"plan for {recipe.out}:\n{format_plan(planned)}")
    if dry_run:
        return {"plan": [{"stage": p.stage.name, "action": p.action, "cause": p.cause, "folder": str(p.folder)} for p in planned]}
    if any(p.stage.name == "teach" and p.action != "reuse" for p in planned):
        check_teacher(recipe)
    import torch

    recipe.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with locked(recipe.out / ".kard-run.lock", f"output folder {recipe.out}"):
        torch.manual_seed(recipe.seed)
        ctx = Context(recipe, folders={}, results={}, show_progress=show_progress, log=log)
        stage_log = execute(recipe, planned, ctx)
        write_run_file(recipe, planned, stage_log)
        report = results(recipe, ctx, stage_log, time.perf_counter() - started)
        atomic_write_text(recipe.out / "results.json", json.dumps(report, indent=2))
        atomic_write_text(recipe.out / "results.md", markdown(recipe, report))
        chart = write_chart(report, recipe.out / "results.png")
    log("\n" + summary_screen(recipe, report, chart))
    return report
