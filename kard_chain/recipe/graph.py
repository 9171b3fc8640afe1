"""Stages as a cached graph: each stage's folder is named by a hash of its settings and its inputs' identities.

A stage declares the recipe keys it depends on, the stages it reads and the files it reads (identified by
content, paths resolved). Its folder, ``{cache}/{name}-{hash}``, holds its work and, once finished,
``done.json``; so a rerun with nothing changed reuses every stage, a changed key re-runs exactly the
stages downstream of it, and variants of a recipe share the stages they have in common. A folder
without ``done.json`` is a stage cut short: it runs again and resumes inside (teacher calls,
candidates, training and evaluations resume where they stopped).
"""

from __future__ import annotations

import fcntl
import json
import resource
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kard_chain.io import atomic_write_text
from kard_chain.manifest import differences, digest, file_identity, identity
from kard_chain.recipe.config import Recipe
from kard_chain.recipe.loading import RecipeError

DONE = "done.json"
"""A finished stage's record inside its folder: its result, seconds and the peak memory after it."""
RUN_FILE = "run.json"
"""The run's record in ``out``: the recipe and each stage's folder, keys and inputs (``load_kard_chain(out)`` reads it)."""


@dataclass
class Stage:
    """One step of a recipe: what it depends on and the function that does its work in its folder."""

    name: str
    keys: dict[str, Any]
    """Dotted recipe keys (and derived settings) that change this stage's output."""
    inputs: list[str]
    """Stages whose output it reads."""
    run: Callable[[Context, Path], dict]
    """Does the work in the stage's folder (resuming what is there); returns a small JSON-able result."""
    files: dict[str, Path | None] = field(default_factory=dict)
    """Files and folders outside the run that it reads, identified by content."""


@dataclass
class Planned:
    """A stage placed in the plan: its hash, folder, what will happen and why."""

    stage: Stage
    hash: str
    folder: Path
    action: str
    """``reuse``, ``run`` or ``resume`` (a folder cut short)."""
    cause: str
    identities: dict[str, Any]


@dataclass
class Context:
    """What a running stage sees: the recipe, the other stages' folders and results, and shared objects."""

    recipe: Recipe
    folders: dict[str, Path]
    results: dict[str, dict]
    show_progress: bool = True
    log: Callable[[str], None] = print
    shared: dict[str, Any] = field(default_factory=dict)
    """Objects loaded once per run (examples, students): by name."""

    def folder(self, stage: str) -> Path:
        return self.folders[stage]


def flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict as dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict) and item:
            out.update(flatten(item, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = item
    return out


def content_identity(path: Path | None) -> Any:
    """An input's identity for the stage hash: :func:`~kard_chain.manifest.identity`, and for a folder every file
    below it (a corpus folder's nested .txt files count), hidden files aside."""
    if path is None or not Path(path).is_dir():
        return identity(path)
    root = Path(path)
    files = {str(f.relative_to(root)): file_identity(f) for f in sorted(root.rglob("*"))
             if f.is_file() and not any(part.startswith(".") for part in f.relative_to(root).parts)}
    return {"path": str(root.resolve()), "files": digest(files)}


def _previous(out: Path) -> dict[str, Any]:
    file = out / RUN_FILE
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text()).get("stages", {})
    except (json.JSONDecodeError, AttributeError):
        return {}


def _cause(stage: Stage, old: dict[str, Any] | None, identities: dict[str, Any], rerun: set[str]) -> str:
    """Why a stage runs: the keys that changed since the last run into this ``out``, its files, or its inputs."""
    if old is None:
        return "new"
    changed = differences(old.get("keys", {}), json.loads(json.dumps(stage.keys, default=str)))
    changed += [f"{name}: content changed" for name in identities if old.get("files", {}).get(name) != identities[name]]
    changed += [f"input {name} re-runs" for name in stage.inputs if name in rerun]
    return "; ".join(changed) or "not run before in this cache"


def plan(recipe: Recipe, stages: list[Stage]) -> list[Planned]:
    """Where each stage's folder is and whether it runs, in order (a stage's inputs come before it)."""
    hashes: dict[str, str] = {}
    previous = _previous(recipe.out)
    rerun: set[str] = set()
    planned = []
    for stage in stages:
        missing = [name for name in stage.inputs if name not in hashes]
        if missing:
            raise RuntimeError(f"stage {stage.name} reads {missing}, which come later or not at all")
        identities = {name: content_identity(path) for name, path in stage.files.items()}
        key = digest({"stage": stage.name, "keys": stage.keys, "files": identities,
                      "inputs": {name: hashes[name] for name in stage.inputs}})
        hashes[stage.name] = key
        folder = recipe.stages_dir / f"{stage.name}-{key}"
        if (folder / DONE).is_file():
            action, cause = "reuse", ""
        else:
            action = "resume" if folder.is_dir() else "run"
            cause = _cause(stage, previous.get(stage.name), identities, rerun)
            rerun.add(stage.name)
        planned.append(Planned(stage, key, folder, action, cause, identities))
    return planned


def format_plan(planned: list[Planned]) -> str:
    """One line per stage: what happens and why."""
    width = max(len(p.stage.name) for p in planned)
    lines = []
    for p in planned:
        what = {"reuse": "reused", "run": "runs", "resume": "resumes"}[p.action]
        lines.append(f"  {p.stage.name:<{width}}  {what:<8} {p.folder.name}" + (f"  ({p.cause})" if p.cause else ""))
    return "\n".join(lines)


@contextmanager
def locked(path: Path, what: str):
    """An exclusive lock on ``path`` (a lock file), refused at once if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RecipeError(f"{what} is in use by another kard run; wait for it to finish", path=path.parent) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def execute(recipe: Recipe, planned: list[Planned], ctx: Context) -> list[dict]:
    """Run the planned stages in order (reused ones are only read); returns the stage log."""
    log = []
    for p in planned:
        ctx.folders[p.stage.name] = p.folder
        if p.action == "reuse":
            ctx.results[p.stage.name] = json.loads((p.folder / DONE).read_text())
            ctx.log(f"== {p.stage.name}: reused ({p.folder.name})")
            log.append({"stage": p.stage.name, "action": "reused", "folder": p.folder.name})
            continue
        now = {name: content_identity(path) for name, path in p.stage.files.items()}
        changed = [name for name in now if now[name] != p.identities[name]]
        if changed:
            raise RecipeError(f"stage {p.stage.name}: {', '.join(changed)} changed since the run was planned; run again")
        ctx.log(f"== {p.stage.name}: {'resumes' if p.action == 'resume' else 'runs'}" + (f" ({p.cause})" if p.cause else ""))
        p.folder.mkdir(parents=True, exist_ok=True)
        with locked(p.folder.parent / f".{p.folder.name}.lock", f"stage folder {p.folder.name}"):
            start = time.perf_counter()
            result = p.stage.run(ctx, p.folder)
            record = {"result": result, "seconds": round(time.perf_counter() - start, 2),
                      "peak_memory_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
                      "keys": json.loads(json.dumps(p.stage.keys, default=str))}
            atomic_write_text(p.folder / DONE, json.dumps(record, indent=2))
        ctx.results[p.stage.name] = record
        ctx.log(f"   {p.stage.name}: {record['seconds']:.1f} s")
        log.append({"stage": p.stage.name, "action": "resumed" if p.action == "resume" else "ran", "folder": p.folder.name,
                    "cause": p.cause, "seconds": record["seconds"]})
    return log


def write_run_file(recipe: Recipe, planned: list[Planned], log: list[dict]) -> None:
    """``out/run.json``: the recipe, each stage's folder, keys, files and inputs, and this run's stage log."""
    stages = {p.stage.name: {"folder": str(p.folder.resolve()), "hash": p.hash, "inputs": p.stage.inputs,
                             "keys": json.loads(json.dumps(p.stage.keys, default=str)), "files": p.identities}
              for p in planned}
    atomic_write_text(recipe.out / RUN_FILE, json.dumps({"recipe": recipe.model_dump(mode="json"), "stages": stages,
                                                          "log": log}, indent=2))
