"""What the reranker and student trainers share: config flags, output folders, checkpoints, batches.

A checkpoint folder ``output_dir/checkpoint-{step}`` holds the trainer's weights (written by the
caller), ``optimizer.pt`` (optimiser, scheduler and torch RNG state, read back with
``weights_only=True``) and ``trainer_state.json`` (step and config).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pydantic import BaseModel


def add_config_flags(parser, model: type[BaseModel]) -> None:
    """One ``--field-name`` flag per config field, plus ``--config FILE`` (JSON)."""
    parser.add_argument("--config", type=Path, help="JSON file with the config; flags override it")
    for name, field in model.model_fields.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, help=(field.description or "").split(".")[0] or None)


def config_from_args(model: type[BaseModel], args) -> BaseModel:
    """The config from ``--config`` and the flags given (pydantic converts the strings)."""
    values = json.loads(args.config.read_text()) if args.config else {}
    values.update({k: v for k, v in vars(args).items() if k in model.model_fields and v is not None})
    return model(**values)


def checkpoints_in(out: Path, overwrite: bool) -> list[Path]:
    """The checkpoints in ``out``, oldest first; refuses a non-empty folder without any unless ``overwrite``."""
    found = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])) if out.is_dir() else []
    if out.is_dir() and any(out.iterdir()) and not found and not overwrite:
        raise FileExistsError(f"{out} is not empty and holds no checkpoint; set overwrite_output_dir to train into it")
    return found


def save_training_state(ckpt: Path, optimizer, scheduler, step: int, config: BaseModel, **extra: Any) -> None:
    """Optimiser, scheduler, RNG state and ``trainer_state.json`` into checkpoint folder ``ckpt``."""
    import torch

    ckpt.mkdir(parents=True, exist_ok=True)
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state()}
    torch.save(state, ckpt / "optimizer.pt")
    (ckpt / "trainer_state.json").write_text(json.dumps({"step": step, "config": config.model_dump(mode="json"), **extra}))


def load_training_state(ckpt: Path, optimizer, scheduler) -> dict:
    """Restore what :func:`save_training_state` wrote; returns ``trainer_state.json``."""
    import torch

    state = torch.load(ckpt / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"])
    return json.loads((ckpt / "trainer_state.json").read_text())


def epoch_batches(items: list, batch_size: int, seed: int, epoch: int, accelerator) -> tuple[list[list], random.Random]:
    """This process's shuffled batches for ``epoch`` (the same count on every process) and the epoch's RNG."""
    rng = random.Random(seed * 1000 + epoch)
    order = rng.sample(items, len(items))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches = batches[: len(batches) - len(batches) % accelerator.num_processes]
    return batches[accelerator.process_index :: accelerator.num_processes], rng
