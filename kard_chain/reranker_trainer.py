"""Training the KARD reranker: the loop behind ``trainers/reranker.py`` and ``kard train-reranker``.

One pydantic config is the truth (from flags or a JSON file). AdamW with linear warm-up
and decay, gradient accumulation, a checkpoint every ``save_every`` optimiser steps (model,
optimiser, scheduler and step; resumed from the last one in ``output_dir``), an evaluation
after each epoch, and :mod:`accelerate` for several processes or GPUs::

    accelerate launch --num_processes 2 --cpu trainers/reranker.py --config reranker.json

Evaluation: on held-out candidate sets (examples not trained on), Hits@1/3/5 of the
rationale's best passage (highest BM25(rationale, passage)) when the candidates are ranked
by BM25(question) and by the reranker.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kard_chain.jsonl_store import read_records
from kard_chain.rerank_candidates import CandidateSet
from kard_chain.training import checkpoints_in, epoch_batches, load_training_state, save_training_state


class RerankerTrainingConfig(BaseModel):
    """Everything a reranker training run needs."""

    model_config = ConfigDict(extra="forbid")

    encoder: str
    """Hugging Face encoder (folder or hub name) to start from."""
    candidates: Path
    """Candidate store (``build_candidates``)."""
    index: Path
    """BM25 index folder holding the passages (and scoring BM25(question) for evaluation)."""
    output_dir: Path
    """Checkpoints, the final model (``final/``) and ``metrics.json``."""
    scoring: Literal["late_interaction", "cross_encoder"] = "late_interaction"
    dim: int = 128
    loss: Literal["kl", "ce"] = "kl"
    target_temperature: float = Field(default=1.0, gt=0)
    """Temperature of softmax(BM25(rationale, d) / tau) (the KL target)."""
    score_temperature: float = Field(default=1.0, gt=0)
    """Temperature of the reranker's softmax."""
    candidates_per_set: int = Field(default=16, ge=2)
    """Candidates sampled per set each step (the rationale's best passage always among them)."""
    rationale_share: float = Field(default=0.5, ge=0, le=1)
    """Share of the sampled candidates drawn from the rationale-retrieved passages."""
    batch_size: int = Field(default=8, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    learning_rate: float = 2e-5
    head_learning_rate: float = 1e-3
    """The new projection or head learns faster than the pretrained encoder."""
    weight_decay: float = 0.01
    warmup_ratio: float = Field(default=0.1, ge=0, le=1)
    epochs: int = Field(default=1, ge=1)
    max_steps: int | None = None
    """Stop after this many optimiser steps (overrides epochs)."""
    save_every: int = Field(default=200, ge=1)
    eval_fraction: float = Field(default=0.1, ge=0, lt=1)
    """Share of examples held out for evaluation (by a hash of the example id)."""
    lora_r: int | None = Field(default=None, ge=1)
    """Train LoRA adapters of this rank (peft) instead of the whole encoder; merged into it at the end."""
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = None
    """Modules that get adapters (default: peft's choice for the architecture)."""
    max_question_tokens: int = 64
    max_passage_tokens: int = 256
    seed: int = 0
    overwrite_output_dir: bool = False



def is_held_out(example_id: str, fraction: float) -> bool:
    """A stable split by example id: the same example is always on the same side."""
    return int(hashlib.sha256(example_id.encode()).hexdigest()[:8], 16) / 16**8 < fraction


def sample_candidates(c: CandidateSet, n: int, share: float, rng: random.Random) -> tuple[list[str], list[float]]:
    """``n`` candidates mixing rationale- and question-retrieved passages; the best by target is always kept."""
    best = c.best
    by_r = [i for i, r in enumerate(c.from_rationale) if r and i != best]
    by_q = [i for i, r in enumerate(c.from_rationale) if not r and i != best]
    want_r = min(len(by_r), round((n - 1) * share))
    chosen = rng.sample(by_r, want_r) + rng.sample(by_q, min(len(by_q), n - 1 - want_r))
    chosen += rng.sample([i for i in by_r if i not in chosen], min(n - 1 - len(chosen), len(by_r) - want_r))
    chosen = [best] + chosen
    rng.shuffle(chosen)
    return [c.passage_ids[i] for i in chosen], [c.rationale_scores[i] for i in chosen]


def hits(rankings: list[list[int]], gold: list[int], ks=(1, 3, 5)) -> dict[str, float]:
    """Hits@k: the share of sets whose gold position is among the first k of the ranking."""
    return {f"hits@{k}": sum(g in r[:k] for r, g in zip(rankings, gold)) / max(len(gold), 1) for k in ks}


def train_reranker(config: RerankerTrainingConfig) -> dict:
    """Train (or resume) and return the final evaluation metrics."""
    import torch
    from accelerate import Accelerator
    from safetensors.torch import load_file
    from transformers import get_linear_schedule_with_warmup

    from kard_chain.bm25_index import BM25Index
    from kard_chain.losses import BM25DistillationKLLoss, TopCandidateCrossEntropyLoss
    from kard_chain.reranker_model import KardReranker, RerankerConfig, reranker_text

    accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum)
    out = config.output_dir
    checkpoints = checkpoints_in(out, config.overwrite_output_dir)

    sets = list(read_records(config.candidates, CandidateSet).values())
    train = [c for c in sets if not is_held_out(c.example_id, config.eval_fraction)]
    held_out = [c for c in sets if is_held_out(c.example_id, config.eval_fraction)]
    if not train:
        raise ValueError(f"no training candidate sets in {config.candidates}")
    index = BM25Index.load(config.index)
    text = {}

    def passage_text(pid: str) -> str:
        if pid not in text:
            p = index.passages.get(index.row_of[pid])
            text[pid] = reranker_text(p.title, p.text)
        return text[pid]

    rconf = RerankerConfig(scoring=config.scoring, dim=config.dim, max_question_tokens=config.max_question_tokens,
                           max_passage_tokens=config.max_passage_tokens)
    torch.manual_seed(config.seed)
    model = KardReranker.from_encoder(config.encoder, rconf)
    if config.lora_r:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            from kard_chain.errors import MissingExtraError

            raise MissingExtraError("peft", "lora") from None
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=config.lora_target_modules)
        model.encoder = get_peft_model(model.encoder, lora)
    head = [p for n, p in model.named_parameters() if n.startswith("head.")]
    body = [p for n, p in model.named_parameters() if not n.startswith("head.") and p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": config.learning_rate}, {"params": head, "lr": config.head_learning_rate}], weight_decay=config.weight_decay
    )
    per_epoch = max(1, (len(train) // config.batch_size // accelerator.num_processes) // config.grad_accum)
    total = config.max_steps or per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * config.warmup_ratio), total)
    loss_fn = (
        BM25DistillationKLLoss(config.target_temperature, config.score_temperature)
        if config.loss == "kl"
        else TopCandidateCrossEntropyLoss(config.score_temperature)
    )
    step = 0
    if checkpoints:
        last = checkpoints[-1]
        model.encoder.load_state_dict(load_file(last / "encoder.safetensors"))
        model.head.load_state_dict(load_file(last / "head.safetensors"))
        step = load_training_state(last, optimizer, scheduler)["step"]
        accelerator.print(f"resuming from {last} at step {step}")
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    def save_checkpoint() -> None:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            from safetensors.torch import save_file

            ckpt = out / f"checkpoint-{step}"
            ckpt.mkdir(parents=True, exist_ok=True)
            unwrapped = accelerator.unwrap_model(model)
            save_file({k: v.contiguous() for k, v in unwrapped.encoder.state_dict().items()}, ckpt / "encoder.safetensors")
            save_file({k: v.contiguous() for k, v in unwrapped.head.state_dict().items()}, ckpt / "head.safetensors")
            save_training_state(ckpt, optimizer, scheduler, step, config)

    def evaluate() -> dict:
        unwrapped = accelerator.unwrap_model(model)
        gold, by_bm25, by_model = [], [], []
        for c in held_out:
            gold.append(c.best)
            q_scores = index.score(c.question, c.passage_ids)
            by_bm25.append(sorted(range(len(q_scores)), key=lambda i: -q_scores[i]))
            m_scores = unwrapped.score([c.question], [[passage_text(p) for p in c.passage_ids]])[0]
            by_model.append(sorted(range(len(m_scores)), key=lambda i: -m_scores[i]))
        return {"sets": len(held_out), "bm25_question": hits(by_bm25, gold), "reranker": hits(by_model, gold)}

    metrics: dict = {}
    model.train()
    micro = 0
    for epoch in range(10**9):
        batches, rng = epoch_batches(train, config.batch_size, config.seed, epoch, accelerator)
        for batch in batches:
            micro += 1
            sampled = [sample_candidates(c, config.candidates_per_set, config.rationale_share, rng) for c in batch]
            if micro <= step * config.grad_accum:  # resumed: done before (sampled anyway, to replay the rng)
                continue
            with accelerator.accumulate(model):
                scores, mask = model([c.question for c in batch], [[passage_text(p) for p in ids] for ids, _ in sampled])
                targets = torch.zeros_like(scores)
                for i, (_, t) in enumerate(sampled):
                    targets[i, : len(t)] = torch.tensor(t)
                loss = loss_fn(scores, targets, mask)
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                step += 1
                if step % 10 == 0 or step == 1:
                    accelerator.print(f"step {step}/{total} loss {loss.item():.4f}")
                if step % config.save_every == 0:
                    save_checkpoint()
                if step >= total:
                    break
        if held_out and accelerator.is_main_process:
            metrics = {"epoch": epoch, "step": step, **evaluate()}
            accelerator.print(format_metrics(metrics))
        if step >= total:
            break
    save_checkpoint()
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(model)
        if config.lora_r:
            final.encoder = final.encoder.merge_and_unload()  # a plain encoder: loads without peft
        final.save_pretrained(out / "final")
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    accelerator.wait_for_everyone()
    return metrics


def format_metrics(metrics: dict) -> str:
    """Hits@k for BM25(question) and the reranker, side by side."""
    lines = [f"epoch {metrics['epoch']} step {metrics['step']}: {metrics['sets']} held-out sets", f"{'':<16}{'hits@1':>8}{'hits@3':>8}{'hits@5':>8}"]
    for name in ("bm25_question", "reranker"):
        lines.append(f"{name:<16}" + "".join(f"{metrics[name][k]:>8.3f}" for k in ("hits@1", "hits@3", "hits@5")))
    return "\n".join(lines)
