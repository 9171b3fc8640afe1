import pytest

torch = pytest.importorskip("torch")

from kard_chain.reranker.losses import BM25DistillationKLLoss, TopCandidateCrossEntropyLoss  # noqa: E402


def test_kl_is_zero_when_scores_match_targets_and_ignores_padding():
    targets = torch.tensor([[3.0, 1.0, 0.0, 0.0], [2.0, 2.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    loss = BM25DistillationKLLoss()
    assert loss(targets.clone(), targets, mask).item() == pytest.approx(0.0, abs=1e-6)
    padded = targets.clone()
    padded[0, 3] = 100.0  # a padded place must not count
    assert loss(padded, targets, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(-targets, targets, mask).item() > 0.1


def test_kl_falls_when_scores_are_trained_and_temperature_sharpens_targets():
    targets = torch.tensor([[5.0, 3.0, 1.0, 0.5]])
    mask = torch.ones_like(targets, dtype=torch.bool)
    scores = torch.zeros_like(targets, requires_grad=True)
    loss = BM25DistillationKLLoss(target_temperature=0.5)
    opt = torch.optim.SGD([scores], lr=1.0)
    first = loss(scores, targets, mask).item()
    for _ in range(50):
        opt.zero_grad()
        value = loss(scores, targets, mask)
        value.backward()
        opt.step()
    assert value.item() < first / 10
    assert scores.argmax().item() == 0


def test_ce_targets_the_best_bm25_candidate():
    targets = torch.tensor([[1.0, 4.0, 2.0]])
    mask = torch.ones_like(targets, dtype=torch.bool)
    ce = TopCandidateCrossEntropyLoss()
    good = ce(torch.tensor([[0.0, 5.0, 0.0]]), targets, mask)
    bad = ce(torch.tensor([[5.0, 0.0, 0.0]]), targets, mask)
    assert good.item() < 0.05 < bad.item()
    with pytest.raises(ValueError, match="must match"):
        ce(torch.zeros(1, 2), targets, mask)
