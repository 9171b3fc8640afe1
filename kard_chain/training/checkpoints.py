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

from pydantic import BaseModel

from kard_chain.io import atomic_write_text


def checkpoints_in(out: Path, overwrite: bool) -> list[Path]:
    """The complete checkpoints in ``out``, oldest first; refuses a non-empty folder without any unless ``overwrite``."""
    found = [p for p in out.glob("checkpoint-*") if p.name.split("-", 1)[1].isdigit()] if out.is_dir() else []
    found.sort(key=lambda p: int(p.name.split("-", 1)[1]))
    if out.is_dir() and any(not p.name.startswith(".") for p in out.iterdir()) and not found and not overwrite:
        raise FileExistsError(f"{out} is not empty and holds no checkpoint; set overwrite_output_dir to train into it")
    return found


def save_checkpoint(out: Path, step: int, save_weights: Callable[[Path], None], optimizer, scheduler, config: BaseModel) -> Path:
    """Write ``out/checkpoint-{step}`` atomically: weights, optimiser, scheduler, RNG and step."""
    import torch

    final = out / f"checkpoint-{step}"
    tmp = out / f".checkpoint-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(tmp)
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


def write_metrics(out: Path, metrics: dict) -> None:
    """``out/metrics.json``, written atomically."""
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
