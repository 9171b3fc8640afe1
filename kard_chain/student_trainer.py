"""Training the student: the loop behind ``trainers/student.py`` and ``kard train-student``.

    kard train-student --method kard --model google/flan-t5-base --dataset strategyqa --data-dir data/strategyqa \\
        --rationales rationales.jsonl --index index/ --output-dir student/
    accelerate launch --num_processes 2 trainers/student.py --config student.json

One pydantic config from flags or a JSON file. The training pairs (see :mod:`kard_chain.student_data`)
are built once and kept in ``output_dir/pairs.jsonl``, so a resumed run trains on the same data.
AdamW with linear warm-up and decay, gradient accumulation, bf16/fp16 where the device has
it, optional gradient checkpointing, a checkpoint every ``save_every`` steps (resumed from the
last one), and at the end ``output_dir/final``: ``save_pretrained`` of model and tokenizer plus
``kard_student.json`` (the resolved config, which the inference chain reads for the method,
``k`` and the prompt). Sequence-to-sequence models (T5) and decoder-only ones both train.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kard_chain.io import atomic_write_text
from kard_chain.student_data import Method, StudentPair
from kard_chain.training import checkpoints_in, epoch_batches, load_training_state, save_training_state

STUDENT_CONFIG = "kard_student.json"


class StudentTrainingConfig(BaseModel):
    """Everything a student training run needs."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    """Model to start from (folder or hub name): seq2seq (T5) or decoder-only."""
    output_dir: Path
    """Checkpoints, ``pairs.jsonl``, the final model (``final/``) and ``metrics.json``."""
    method: Method = "kard"
    """kard (question + passages -> rationale + answer), rd (no passages) or ft (question -> answer)."""
    dataset: str | None = None
    """Dataset name (strategyqa, medqa, obqa, jsonl); not needed when ``pairs`` is given."""
    data_dir: Path | None = None
    split: str = "train"
    rationales: Path | None = None
    """Teacher cache (``kard teach --out``)."""
    reference: bool = False
    """Also train on the dataset's reference rationales."""
    index: Path | None = None
    """BM25 index queried with each rationale (kard)."""
    pairs: Path | None = None
    """Ready training pairs (JSONL of StudentPair) instead of dataset + rationales + index."""
    k: int = Field(default=3, ge=1)
    """Passages per input (kard)."""
    prompt: str = "default"
    """Student prompt variant (``prompts/student/{prompt}.toml``)."""
    prompts_dir: Path | None = None
    max_passage_tokens: int = Field(default=384, ge=1)
    max_source_tokens: int = Field(default=512, ge=8)
    max_target_tokens: int = Field(default=128, ge=2)
    batch_size: int = Field(default=8, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    learning_rate: float = 3e-4
    weight_decay: float = 0.0
    warmup_ratio: float = Field(default=0.0, ge=0, le=1)
    epochs: int = Field(default=3, ge=1)
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimiser steps (overrides epochs)."""
    max_seconds: float | None = Field(default=None, gt=0)
    """Stop after this much training time (a fixed budget; the schedule still spans max_steps/epochs)."""
    save_every: int = Field(default=500, ge=1)
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """auto: bf16 on a GPU that has it, fp16 on other GPUs, none on CPU."""
    gradient_checkpointing: bool = False
    seed: int = 0
    overwrite_output_dir: bool = False
    log_every: int = Field(default=10, ge=1)

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


def formatter_for(config: StudentTrainingConfig, tokenizer=None):
    """The student formatter a config describes (the inference chain builds the same one)."""
    from kard_chain.student_format import StudentFormatter

    return StudentFormatter.load(config.prompt, config.prompts_dir, tokenizer=tokenizer, max_passage_tokens=config.max_passage_tokens)


def build_pairs(config: StudentTrainingConfig, tokenizer=None, show_progress: bool = True) -> list[StudentPair]:
    """The training pairs from the config's dataset, rationales and index."""
    from kard_chain.datasets import load_dataset
    from kard_chain.jsonl_store import read_records
    from kard_chain.rationale_cache import read_rationales

    if config.pairs is not None:
        return list(read_records(config.pairs, StudentPair).values())
    from kard_chain.student_data import student_pairs

    retriever = None
    if config.method == "kard":
        from kard_chain.retrievers.bm25 import BM25Retriever

        retriever = BM25Retriever.load(config.index, k=config.k)
    return student_pairs(
        config.method, load_dataset(config.dataset, config.data_dir, split=config.split), formatter_for(config, tokenizer),
        read_rationales(config.rationales) if config.rationales else None, reference=config.reference,
        retriever=retriever, k=config.k, show_progress=show_progress,
    )


def _mixed_precision(choice: str) -> str:
    import torch

    if choice != "auto":
        return choice
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


class Collator:
    """Tokenises a batch of pairs: seq2seq labels, or prompt-masked labels for a decoder-only model."""

    def __init__(self, tokenizer, is_seq2seq: bool, max_source: int, max_target: int) -> None:
        self.tok, self.seq2seq, self.max_source, self.max_target = tokenizer, is_seq2seq, max_source, max_target

    def __call__(self, batch: list[StudentPair]) -> dict:
        import torch

        sources, targets = [p.source for p in batch], [p.target for p in batch]
        if self.seq2seq:
            enc = self.tok(sources, max_length=self.max_source, truncation=True, padding=True, return_tensors="pt")
            labels = self.tok(text_target=targets, max_length=self.max_target, truncation=True, padding=True,
                              return_tensors="pt")["input_ids"]
            labels[labels == self.tok.pad_token_id] = -100
            return {**enc, "labels": labels}
        src = self.tok(sources, max_length=self.max_source, truncation=True, add_special_tokens=True)["input_ids"]
        tgt = self.tok([" " + t for t in targets], max_length=self.max_target, truncation=True, add_special_tokens=False)["input_ids"]
        rows = [(s, t + [self.tok.eos_token_id]) for s, t in zip(src, tgt)]
        width = max(len(s) + len(t) for s, t in rows)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        ids = torch.full((len(rows), width), pad)
        labels = torch.full((len(rows), width), -100)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (s, t) in enumerate(rows):  # right padding: the labels line up with the tokens
            ids[i, : len(s) + len(t)] = torch.tensor(s + t)
            labels[i, len(s) : len(s) + len(t)] = torch.tensor(t)
            mask[i, : len(s) + len(t)] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def train_student(config: StudentTrainingConfig, show_progress: bool = True) -> dict:
    """Train (or resume) and return the run's figures (steps, loss, target tokens per second)."""
    import torch
    import transformers
    from accelerate import Accelerator
    from tqdm.auto import tqdm
    from transformers import AutoConfig, AutoTokenizer, get_linear_schedule_with_warmup

    from kard_chain.jsonl_store import read_records

    accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum, mixed_precision=_mixed_precision(config.mixed_precision))
    out = config.output_dir
    checkpoints = checkpoints_in(out, config.overwrite_output_dir)
    start_from = str(checkpoints[-1]) if checkpoints else config.model
    tokenizer = AutoTokenizer.from_pretrained(start_from)
    is_seq2seq = bool(getattr(AutoConfig.from_pretrained(start_from), "is_encoder_decoder", False))

    pairs_file = out / "pairs.jsonl"
    if accelerator.is_main_process and not pairs_file.exists():
        pairs = build_pairs(config, tokenizer, show_progress)
        if not pairs:
            raise ValueError("no training pairs (are the examples labelled and the rationales kept?)")
        atomic_write_text(pairs_file, "".join(p.model_dump_json() + "\n" for p in pairs))
    accelerator.wait_for_everyone()
    pairs = list(read_records(pairs_file, StudentPair).values())

    torch.manual_seed(config.seed)
    auto = transformers.AutoModelForSeq2SeqLM if is_seq2seq else transformers.AutoModelForCausalLM
    model = auto.from_pretrained(start_from)
    if config.gradient_checkpointing:  # transformers 5 renamed it; older releases have only the first name
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    per_epoch = max(1, math.ceil(len(pairs) / config.batch_size / accelerator.num_processes) // config.grad_accum)
    total = config.max_steps or per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * config.warmup_ratio), total)
    step = 0
    if checkpoints:
        step = load_training_state(checkpoints[-1], optimizer, scheduler)["step"]
        accelerator.print(f"resuming from {checkpoints[-1]} at step {step}")
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    collate = Collator(tokenizer, is_seq2seq, config.max_source_tokens, config.max_target_tokens)

    def save(folder: Path, final: bool = False) -> None:
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            return
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.config.use_cache = True  # gradient checkpointing turns it off; inference needs it
        unwrapped.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        if final:
            atomic_write_text(folder / STUDENT_CONFIG, config.model_dump_json(indent=2))
        else:
            save_training_state(folder, optimizer, scheduler, step, config)

    figures = {"steps": 0, "train_seconds": 0.0, "target_tokens": 0, "losses": []}
    bar = tqdm(total=total, initial=step, desc=f"train {config.method}", unit=" steps",
               disable=not (show_progress and accelerator.is_main_process))
    model.train()
    micro, started, stop = 0, time.perf_counter(), False
    for epoch in range(10**9):
        batches, _ = epoch_batches(pairs, config.batch_size, config.seed, epoch, accelerator)
        for batch in batches:
            micro += 1
            if micro <= step * config.grad_accum:  # resumed: trained before
                continue
            inputs = collate(batch)
            figures["target_tokens"] += int((inputs["labels"] != -100).sum())
            with accelerator.accumulate(model):
                loss = model(**{k: v.to(accelerator.device) for k, v in inputs.items()}).loss
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            figures["losses"].append(loss.item())
            if accelerator.sync_gradients:
                step += 1
                figures["steps"] += 1
                bar.update(1)
                if step % config.log_every == 0:
                    bar.set_postfix(loss=f"{sum(figures['losses'][-config.log_every:]) / config.log_every:.4f}")
                if step % config.save_every == 0:
                    spent = time.perf_counter()
                    save(out / f"checkpoint-{step}")
                    started += time.perf_counter() - spent  # checkpoints do not count as training time
                over_time = config.max_seconds is not None and time.perf_counter() - started >= config.max_seconds
                if step >= total or over_time:
                    stop = True
                    break
        if stop or step >= total:
            break
    bar.close()
    figures["train_seconds"] = time.perf_counter() - started
    save(out / f"checkpoint-{step}")
    save(out / "final", final=True)
    losses = figures.pop("losses")
    window = max(1, min(config.log_every, len(losses) // 2))
    metrics = {
        **figures, "step": step, "pairs": len(pairs),
        "first_loss": sum(losses[:window]) / window if losses else None,
        "last_loss": sum(losses[-window:]) / window if losses else None,
        "target_tokens_per_s": figures["target_tokens"] / figures["train_seconds"] if figures["train_seconds"] else None,
    }
    if accelerator.is_main_process:
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    accelerator.print(f"trained {config.method} to step {step}: loss {metrics['first_loss']} -> {metrics['last_loss']}; "
                      f"student in {out / 'final'}")
    return metrics
