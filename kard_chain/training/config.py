"""The config base both trainers share, and its mapping onto command-line flags.

One pydantic config is the truth: flags (``--field-name``) and a JSON file (``--config``) are
mapped onto it once, and nothing changes it afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class TrainingConfig(BaseModel):
    """What every training run needs: its folder, the optimiser's schedule, the budget, checkpoints."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), use_attribute_docstrings=True)

    output_dir: Path
    """Checkpoints, the final model (``final/``) and ``metrics.json``."""
    batch_size: int = Field(default=8, ge=1)
    """Examples per step and process."""
    grad_accum: int = Field(default=1, ge=1)
    """Micro-batches accumulated per optimiser step."""
    learning_rate: float = Field(default=3e-4, gt=0, allow_inf_nan=False)
    """Peak learning rate of AdamW (linear warm-up, then linear decay)."""
    weight_decay: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    """AdamW's decoupled weight decay."""
    warmup_ratio: float = Field(default=0.0, ge=0, le=1)
    """Share of the steps spent warming the learning rate up."""
    epochs: int = Field(default=1, ge=1)
    """Passes over the training data (unless ``max_steps`` is set)."""
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimiser steps (overrides epochs)."""
    max_seconds: float | None = Field(default=None, gt=0)
    """Stop after this much training time (a fixed budget; the schedule still spans max_steps/epochs)."""
    save_every: int = Field(default=500, ge=1)
    """A checkpoint every this many optimiser steps (the run resumes from the last one)."""
    log_every: int = Field(default=10, ge=1)
    """Print the mean loss every this many steps."""
    seed: int = 0
    """Seed of the initialisation, the data order and sampling."""
    overwrite_output_dir: bool = False
    """Start over in a folder that holds another run (or train into a non-empty folder kard did not make)."""


def add_config_flags(parser, model: type[BaseModel]) -> None:
    """One ``--field-name`` flag per config field, plus ``--config FILE`` (JSON); each flag's help is the
    field's docstring and its default (or "required"), written once on the config."""
    parser.add_argument("--config", type=Path, help="JSON file with the config; flags override it")
    for name, field in model.model_fields.items():
        text = " ".join((field.description or name.replace("_", " ")).split())
        shown = "required" if field.is_required() else f"default: {field.default}"
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"{text} ({shown})".replace("%", "%%"))


def config_from_args(model: type[BaseModel], args) -> BaseModel:
    """The config from ``--config`` and the flags given (pydantic converts the strings)."""
    values = json.loads(args.config.read_text()) if args.config else {}
    values.update({k: v for k, v in vars(args).items() if k in model.model_fields and v is not None})
    return model(**values)
