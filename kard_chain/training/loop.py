"""The one training loop of the reranker and the student.

A trainer builds its model, optimiser and data, then hands the loop a :class:`TrainingTask`
(how a batch becomes a loss, how its weights are saved). The loop owns what both need to do
the same way: shuffled per-process batches, gradient accumulation under :mod:`accelerate`,
the linear schedule's step count, checkpoints every ``save_every`` steps with exact resume (a
batch trained before the resume is replayed only for its randomness), a time budget, a
progress bar, the loss log and a stop on a non-finite loss.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kard_chain.training.checkpoints import load_training_state, save_checkpoint
from kard_chain.training.config import TrainingConfig


class TrainingTask(Protocol):
    """What a trainer gives the loop."""

    def loss(self, batch: list, rng: random.Random) -> Any:
        """The loss of one micro-batch (a scalar tensor); ``rng`` is the epoch's generator."""

    def replay(self, batch: list, rng: random.Random) -> None:
        """A batch trained before a resume: draw from ``rng`` exactly as :meth:`loss` would, compute nothing."""

    def save_weights(self, folder: Path) -> None:
        """Write the model's weights into a checkpoint folder (main process only)."""

    def end_of_epoch(self, epoch: int, step: int) -> None:
        """Called on every process after each epoch, the last (possibly partial) one included."""


@dataclass
class LoopResult:
    """What a run of the loop did."""

    step: int
    """The last optimiser step (counting steps before a resume)."""
    steps: int = 0
    """Optimiser steps taken in this run."""
    seconds: float = 0.0
    """Training time, checkpoints excluded."""
    losses: list[float] = field(default_factory=list)
    """The loss of every micro-batch of this run."""

    def loss_window(self, window: int) -> tuple[float | None, float | None]:
        """Mean loss over the first and the last ``window`` micro-batches."""
        w = max(1, min(window, len(self.losses) // 2))
        if not self.losses:
            return None, None
        return sum(self.losses[:w]) / w, sum(self.losses[-w:]) / w


def make_accelerator(grad_accum: int, mixed_precision: str = "no", cpu_bf16: bool = False):
    """An :class:`accelerate.Accelerator`; ``mixed_precision="auto"``: bf16 on a GPU that has it, fp16 on others; on a
    CPU, bf16 where ``cpu_bf16`` and the CPU has native bf16 instructions, else none."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    precision = resolve_precision(mixed_precision, cpu_bf16)
    shared = AcceleratorState._shared_state
    if shared and str(shared.get("_mixed_precision", precision)) != precision:
        # one process training both the reranker (bf16 on a bf16 CPU) and a student (fp32), as kard demo does:
        # accelerate keeps one precision per process unless its state is reset (the distributed setup stays)
        AcceleratorState._reset_state()
    return Accelerator(gradient_accumulation_steps=grad_accum, mixed_precision=precision)


def resolve_precision(mixed_precision: str, cpu_bf16: bool = False) -> str:
    """What ``mixed_precision="auto"`` means on this machine (see :func:`make_accelerator`); other values as given."""
    import torch

    if mixed_precision != "auto":
        return mixed_precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_bf16 and cpu_has_native_bf16() else "no"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated, and slower."""
    import torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check is not None and check() for check in checks)


def epoch_batches(items: list, batch_size: int, seed: int, epoch: int, accelerator) -> tuple[list[list], random.Random]:
    """This process's shuffled batches for ``epoch`` (the same count on every process) and the epoch's RNG."""
    rng = random.Random(seed * 1000 + epoch)
    order = rng.sample(items, len(items))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches = batches[: len(batches) - len(batches) % accelerator.num_processes]
    return batches[accelerator.process_index :: accelerator.num_processes], rng


def total_steps(config: TrainingConfig, n_items: int, num_processes: int) -> int:
    """Optimiser steps of the run: ``max_steps``, else the epochs' worth of this process's batches."""
    batches = math.ceil(n_items / config.batch_size)
    per_process = (batches - batches % num_processes) // num_processes
    if per_process == 0:
        raise ValueError(f"{n_items} training examples make no batch for each of {num_processes} processes")
    return config.max_steps or max(1, per_process // config.grad_accum) * config.epochs


def linear_schedule(optimizer, config: TrainingConfig, total: int):
    """Linear warm-up over ``warmup_ratio`` of the steps, then linear decay to zero."""
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, int(total * config.warmup_ratio), total)


def resume_state(checkpoints: list[Path], optimizer, scheduler, accelerator) -> int:
    """The step to resume from: the last checkpoint's (its optimiser, scheduler and RNG restored), else 0."""
    if not checkpoints:
        return 0
    step = load_training_state(checkpoints[-1], optimizer, scheduler)["step"]
    accelerator.print(f"resuming from {checkpoints[-1]} at step {step}")
    return step


class _Progress:
    """The progress bar and the loss log, on the main process only."""

    def __init__(self, accelerator, total: int, start: int, desc: str, every: int, show: bool) -> None:
        from kard_chain.progress import progress

        self.main, self.total, self.every, self.window = accelerator.is_main_process, total, every, []
        self.bar = progress(total=total, initial=start, desc=desc, unit=" steps", disable=not (show and self.main))

    def step(self, step: int, loss: float) -> None:
        self.window.append(loss)
        self.bar.update(1)
        if step == 1 or step % self.every == 0:
            mean = sum(self.window) / len(self.window)
            self.window = []
            if self.main:  # on stdout, above a live bar if there is one
                from tqdm.auto import tqdm

                tqdm.write(f"step {step}/{self.total} loss {mean:.4f}", file=sys.stdout)

    def close(self) -> None:
        self.bar.close()


def run_loop(config: TrainingConfig, task: TrainingTask, items: list, accelerator, model, optimizer, scheduler, *,
             start_step: int, total: int, desc: str, show_progress: bool = True) -> LoopResult:
    """Train ``model`` from ``start_step`` to ``total`` steps (or ``max_seconds``) and save the last checkpoint."""
    out = config.output_dir
    result = LoopResult(step=start_step)
    progress = _Progress(accelerator, total, start_step, desc, config.log_every, show_progress)

    def checkpoint() -> None:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            save_checkpoint(out, result.step, task.save_weights, optimizer, scheduler, config)

    model.train()
    micro, started, stop = 0, time.perf_counter(), result.step >= total
    for epoch in range(10**9):
        if stop:
            break
        batches, rng = epoch_batches(items, config.batch_size, config.seed, epoch, accelerator)
        for batch in batches:
            micro += 1
            if micro <= result.step * config.grad_accum:  # trained before the resume: replay its randomness only
                task.replay(batch, rng)
                continue
            with accelerator.accumulate(model):
                loss = task.loss(batch, rng)
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"the loss became {value} at step {result.step + 1}: nothing saved from this step; "
                                         "lower the learning rate or check the data")
            result.losses.append(value)
            if accelerator.sync_gradients:
                result.step += 1
                result.steps += 1
                progress.step(result.step, value)
                if result.step % config.save_every == 0:
                    spent = time.perf_counter()
                    checkpoint()
                    started += time.perf_counter() - spent  # checkpoints do not count as training time
                over_time = config.max_seconds is not None and time.perf_counter() - started >= config.max_seconds
                if result.step >= total or over_time:
                    stop = True
                    break
        task.end_of_epoch(epoch, result.step)
    progress.close()
    result.seconds = time.perf_counter() - started
    if result.steps:  # a resumed run that had nothing left to train writes nothing
        checkpoint()
    return result
