"""Checkpoint folders: ``output_dir/checkpoint-{step}``, written whole or not at all.

A checkpoint holds the trainer's weights (written by the caller's ``save_weights``),
``optimizer.pt`` (optimiser, scheduler and torch RNG state, read back with ``weights_only=True``)
and ``trainer_state.json`` (step and config). It is written into a hidden temporary folder and
renamed into place, so a run killed mid-save leaves the previous checkpoint as the last one.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from kard_chain.io import atomic_write_text, share_like_other_files
from kard_chain.manifest import (
    MANIFEST,
    Manifest,
    ManifestMismatch,
    apply_output,
    check_output,
    differences,
    identity,
    manifest_file,
)

RUN_FIELDS_THAT_MAY_CHANGE = ("output_dir", "overwrite_output_dir", "save_every", "log_every", "max_seconds")
"""Config fields a resumed run may change: they do not change what the run trains."""


CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt")
"""What every complete checkpoint holds besides its weights."""


def checkpoints_in(out: Path) -> list[Path]:
    """The complete checkpoints in ``out``, oldest first (a save cut short is a hidden temporary folder; one torn by
    hand, missing its trainer state or optimiser, is passed over, so a run resumes from the last whole one)."""
    found = [p for p in out.glob("checkpoint-*") if p.name.split("-", 1)[1].isdigit()] if out.is_dir() else []
    whole = [p for p in found if all((p / f).is_file() for f in CHECKPOINT_FILES)]
    return sorted(whole, key=lambda p: int(p.name.split("-", 1)[1]))


def prepare_run(config: BaseModel, kind: str, inputs: dict[str, Any], accelerator=None) -> list[Path]:
    """Check ``output_dir`` against this run's manifest (settings and input identities) and return the
    checkpoints to resume from.

    A folder made by another run is refused, naming what differs (``overwrite_output_dir`` starts
    over); a field the config lists in ``IMPLIED_BEFORE`` is recorded only away from the value that
    runs made before it existed used, so their folders still resume; a non-empty folder that kard
    did not make is refused unless ``overwrite_output_dir`` (then the run trains into it, touching
    only its own files). Every process checks; the main process alone writes.
    """
    out = config.output_dir
    implied = getattr(config, "IMPLIED_BEFORE", {})  # recorded only where they differ from what older runs did
    settings = {k: v for k, v in config.model_dump(mode="json").items()  # inputs by their resolved identity below, not as typed
                if k not in RUN_FIELDS_THAT_MAY_CHANGE and k not in inputs and not (k in implied and v == implied[k])}
    manifest = Manifest(kind, {**settings, "inputs": {name: identity(path) for name, path in inputs.items()}})
    main = accelerator is None or accelerator.is_main_process
    found = Manifest.load(out, folder=True)
    if main and found is not None and found.kind == kind and set(inputs) & set(found.settings):
        # runs before this release also recorded the inputs as typed; their resolved identities are compared below
        Manifest(kind, {k: v for k, v in found.settings.items() if k not in inputs}).save(out, folder=True)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    action = _run_action(out, manifest, settings, config.overwrite_output_dir, set(inputs))
    if accelerator is not None:
        accelerator.wait_for_everyone()
    if main:
        _apply_run_action(out, manifest, action)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return checkpoints_in(out) if action in ("resume", "adopt", "into") else []


RUN_FILES = ("final", "pairs.jsonl", "metrics.json", MANIFEST)
"""What a training run writes into its folder besides ``checkpoint-*`` (and hidden temporary folders)."""


def clear_run(out: Path) -> None:
    """Remove what a training run wrote into ``out`` and nothing else: a folder it trained into keeps its other files."""
    for entry in out.iterdir() if out.is_dir() else []:
        name = entry.name
        if name in RUN_FILES or (name.startswith("checkpoint-") and name.split("-", 1)[1].isdigit()) \
                or name.startswith((".checkpoint-", ".final.")):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def _run_action(out: Path, manifest: Manifest, settings: dict, overwrite: bool, inputs: set[str]) -> str:
    """What to do with a run folder (read-only): fresh, restart, resume, replace, adopt (made before manifests) or into."""
    found = Manifest.load(out, folder=True)
    if found is not None and found.kind != manifest.kind:  # another artefact of kard's: never a training run's to take
        raise ManifestMismatch(f"holds a {found.kind}, not a {manifest.kind}; choose another output folder", path=out)
    ours = found is not None
    if ours and not checkpoints_in(out):
        return "restart"  # a run that failed before its first checkpoint: nothing worth keeping
    if not ours and checkpoints_in(out):  # made before manifests: its checkpoints name the config they were made with
        state = json.loads((checkpoints_in(out)[-1] / "trainer_state.json").read_text())
        saved = {k: v for k, v in state.get("config", {}).items() if k not in RUN_FIELDS_THAT_MAY_CHANGE and k not in inputs}
        changed = differences(saved, Manifest(manifest.kind, settings).as_json()["settings"])
        if changed and not overwrite:
            raise ManifestMismatch("holds checkpoints of another training run; it differs in " + "; ".join(changed)
                                   + ". Choose another output folder, or pass --overwrite-output-dir to start over", path=out)
        return "replace" if changed else "adopt"
    if not ours and out.is_dir() and any(not p.name.startswith(".") for p in out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty and was not made by a kard training run; set overwrite_output_dir "
                                  "to train into it")
        return "into"
    return check_output(out, manifest, folder=True, overwrite=overwrite, option="--overwrite-output-dir")


def _apply_run_action(out: Path, manifest: Manifest, action: str) -> None:
    if action == "restart":
        (out / "pairs.jsonl").unlink(missing_ok=True)
        manifest_file(out, folder=True).unlink(missing_ok=True)
    if action == "replace":  # the earlier run's files only: a folder it trained into keeps the rest
        clear_run(out)
    if action in ("adopt", "into", "restart", "replace"):
        manifest.save(out, folder=True)
    else:
        apply_output(out, manifest, action, folder=True)


def save_checkpoint(out: Path, step: int, save_weights: Callable[[Path], None], optimizer, scheduler, config: BaseModel) -> Path:
    """Write ``out/checkpoint-{step}`` atomically: weights, optimiser, scheduler, RNG and step."""
    import torch

    final = out / f"checkpoint-{step}"
    tmp = out / f".checkpoint-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(tmp)
    share_like_other_files(tmp)
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state()}
    torch.save(state, tmp / "optimizer.pt")
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "config": config.model_dump(mode="json")}))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final


def load_training_state(ckpt: Path, optimizer, scheduler) -> dict:
    """Restore what :func:`save_checkpoint` wrote besides the weights; returns ``trainer_state.json``."""
    import torch

    state = torch.load(ckpt / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"])
    return json.loads((ckpt / "trainer_state.json").read_text())


def write_metrics(out: Path, metrics: dict) -> dict:
    """``out/metrics.json``, written atomically; returns what it holds. A rerun of a finished run (no step taken) keeps
    the record of the run that trained (a rerun that does nothing changes nothing)."""
    file = out / "metrics.json"
    if not metrics.get("steps") and file.is_file():
        return json.loads(file.read_text())
    atomic_write_text(file, json.dumps(metrics, indent=2))
    return metrics
