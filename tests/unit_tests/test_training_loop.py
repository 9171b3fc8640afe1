"""The shared training loop on a toy regression: the loss falls, resume is exact, checkpoints are whole or absent."""

import random
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytest.importorskip("transformers")

from kard_chain.training.checkpoints import checkpoints_in  # noqa: E402
from kard_chain.training.config import TrainingConfig  # noqa: E402
from kard_chain.training.loop import (  # noqa: E402
    linear_schedule,
    make_accelerator,
    resume_state,
    run_loop,
    total_steps,
)

ITEMS = [(x / 40, 3 * x / 40 - 1) for x in range(40)]


class Regression:
    """y = a x + b with noise on the input (so torch's RNG state matters) and a draw from the epoch's generator."""

    def __init__(self, model, nan_at: int | None = None) -> None:
        self.model, self.nan_at, self.calls, self.epochs = model, nan_at, 0, []

    def loss(self, batch, rng: random.Random):
        self.calls += 1
        rng.random()
        x = torch.tensor([[b[0]] for b in batch]) + 0.01 * torch.randn(len(batch), 1)
        loss = ((self.model(x).squeeze(1) - torch.tensor([b[1] for b in batch])) ** 2).mean()
        return loss * float("nan") if self.calls == self.nan_at else loss

    def replay(self, batch, rng: random.Random) -> None:
        rng.random()

    def save_weights(self, folder) -> None:
        torch.save(self.model.state_dict(), folder / "model.pt")

    def end_of_epoch(self, epoch: int, step: int) -> None:
        self.epochs.append((epoch, step))


def train(out, nan_at=None, **kw):
    config = TrainingConfig(output_dir=out, batch_size=4, learning_rate=0.2, max_steps=25, save_every=10, **kw)
    accelerator = make_accelerator(config.grad_accum)
    checkpoints = checkpoints_in(out)
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    if checkpoints:
        model.load_state_dict(torch.load(checkpoints[-1] / "model.pt", weights_only=True))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    total = total_steps(config, len(ITEMS), accelerator.num_processes)
    scheduler = linear_schedule(optimizer, config, total)
    start = resume_state(checkpoints, optimizer, scheduler, accelerator)
    task = Regression(model, nan_at)
    run = run_loop(config, task, ITEMS, accelerator, model, optimizer, scheduler, start_step=start, total=total, desc="toy",
                   show_progress=False)
    return run, model, task


def test_loss_falls_and_epochs_end_where_the_batches_do(tmp_path):
    run, _, task = train(tmp_path / "a")
    assert run.step == 25 and run.steps == 25
    first, last = run.loss_window(5)
    assert last < first / 4
    assert task.epochs == [(0, 10), (1, 20), (2, 25)]  # 40 items / 4 = 10 steps an epoch; the last epoch ends early
    assert [p.name for p in checkpoints_in(tmp_path / "a")] == ["checkpoint-10", "checkpoint-20", "checkpoint-25"]


def test_resume_from_a_checkpoint_ends_on_the_same_weights_and_a_torn_one_is_ignored(tmp_path):
    _, straight, _ = train(tmp_path / "straight")
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(tmp_path / "straight" / "checkpoint-10", resumed / "checkpoint-10")
    shutil.copytree(tmp_path / "straight" / "checkpoint-20", resumed / ".checkpoint-20.tmp")  # a save cut short
    (resumed / ".checkpoint-20.tmp" / "optimizer.pt").unlink()
    assert [p.name for p in checkpoints_in(resumed)] == ["checkpoint-10"]
    run, again, _ = train(resumed)
    assert run.steps == 15 and run.step == 25
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), again.state_dict().values()))
    assert not (resumed / ".checkpoint-20.tmp").exists() and (resumed / "checkpoint-20").is_dir()  # the torn save replaced


def test_a_non_finite_loss_stops_the_run_before_saving_it(tmp_path):
    with pytest.raises(FloatingPointError, match="loss became nan at step 4"):
        train(tmp_path / "nan", nan_at=4)
    assert not (tmp_path / "nan" / "checkpoint-4").exists()


def test_steps_per_epoch_count_the_last_partial_batch_and_the_processes():
    config = TrainingConfig(output_dir="x", batch_size=4, epochs=2)
    assert total_steps(config, 41, 1) == 22  # 11 batches an epoch, the last one of a single item
    assert total_steps(config, 41, 2) == 10  # 11 batches trimmed to 10, 5 per process
    assert total_steps(config.model_copy(update={"grad_accum": 2}), 41, 1) == 10
    with pytest.raises(ValueError, match="no batch"):
        total_steps(config, 3, 2)
