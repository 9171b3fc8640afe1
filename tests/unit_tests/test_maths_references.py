"""The reranker's maths, the losses and the metrics against independent references (explicit loops,
torch.nn.functional, hand-computed cases), so that a dropped mask, a reversed KL or an ignored
temperature fails a test."""

import math

import pytest

from kard_chain.answers import majority_vote
from kard_chain.metrics import hits, recall_at_k, wilson_interval

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from torch.nn import functional as F  # noqa: E402

from kard_chain.reranker.losses import BM25DistillationKLLoss, TopCandidateCrossEntropyLoss  # noqa: E402
from tests.unit_tests.tiny_models import tiny_reranker  # noqa: E402

WORDS = "where does the zorb live marsh tundra reef it is red blue a of and in lives very long passage text".split()


def maxsim_by_loops(q, p):
    """Sum over question tokens of the best dot product with any passage token (lists of vectors)."""
    return sum(max(sum(a * b for a, b in zip(qt, pt)) for pt in p) for qt in q)


def test_maxsim_scores_equal_explicit_loops_over_real_tokens_with_padding_in_play():
    torch.manual_seed(0)
    model = tiny_reranker("late_interaction", WORDS).eval()
    questions = ["where does the zorb live", "zorb"]  # different lengths: question padding in play
    candidates = [["the zorb lives in the marsh", "reef", "a very long passage text of the tundra and the reef and it is red"],
                  ["blue", "the zorb is red"]]
    scores = model.score(questions, candidates)
    with torch.no_grad():
        for question, cands, row in zip(questions, candidates, scores):
            q, q_mask = model.embed_questions([question])
            q_tokens = q[0][q_mask[0]].tolist()
            assert all(abs(sum(x * x for x in v) - 1) < 1e-5 for v in q_tokens)  # unit-norm token vectors
            for passage, score in zip(cands, row):
                p, p_mask = model.embed_passages([passage])  # alone: no passage padding at all
                p_tokens = p[0][p_mask[0]].tolist()
                assert all(abs(sum(x * x for x in v) - 1) < 1e-5 for v in p_tokens)
                assert score == pytest.approx(maxsim_by_loops(q_tokens, p_tokens), abs=1e-4)


def kl_reference(scores, targets, mask, t_target, t_score):
    """KL(softmax(targets / t_target) || softmax(scores / t_score)) per set over the real candidates, mean over sets."""
    total = 0.0
    for s, t, m in zip(scores, targets, mask):
        s, t = s[m], t[m]
        total += F.kl_div(F.log_softmax(s / t_score, -1), F.log_softmax(t / t_target, -1), log_target=True, reduction="sum")
    return total / len(scores)


@pytest.mark.parametrize("t_target, t_score", [(1.0, 1.0), (0.5, 1.0), (2.0, 0.3), (1.0, 4.0)])
def test_kl_loss_equals_torch_kl_div_in_the_paper_direction(t_target, t_score):
    torch.manual_seed(1)
    scores, targets = torch.randn(3, 5) * 3, torch.rand(3, 5) * 10
    mask = torch.tensor([[True] * 5, [True, True, True, False, False], [True, False, True, True, False]])
    got = BM25DistillationKLLoss(t_target, t_score)(scores, targets, mask)
    assert got.item() == pytest.approx(kl_reference(scores, targets, mask, t_target, t_score).item(), rel=1e-5)
    reversed_direction = sum(F.kl_div(F.log_softmax(t[m] / t_target, -1), F.log_softmax(s[m] / t_score, -1), log_target=True,
                                      reduction="sum") for s, t, m in zip(scores, targets, mask)) / 3
    assert got.item() != pytest.approx(reversed_direction.item(), rel=1e-3)


@pytest.mark.parametrize("t_score", [1.0, 0.25, 3.0])
def test_ce_loss_equals_torch_cross_entropy_on_the_best_real_candidate(t_score):
    scores = torch.tensor([[1.0, 2.0, 0.5, 9.0], [0.3, -1.0, 2.0, 0.0]])
    targets = torch.tensor([[4.0, 1.0, 2.0, 99.0], [1.0, 3.0, 2.0, 0.0]])  # 99 sits on a padded place
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    expected = (F.cross_entropy(scores[0, :3][None] / t_score, torch.tensor([0]))
                + F.cross_entropy(scores[1][None] / t_score, torch.tensor([1]))) / 2
    assert TopCandidateCrossEntropyLoss(t_score)(scores, targets, mask).item() == pytest.approx(expected.item(), rel=1e-5)


def test_wilson_interval_against_hand_computed_values():
    low, high = wilson_interval(8, 10)  # p=0.8, n=10, z=1.96
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    centre = (0.5 + 1.96**2 / 200) / (1 + 1.96**2 / 100)
    half = 1.96 * math.sqrt(0.25 / 100 + 1.96**2 / 40000) / (1 + 1.96**2 / 100)
    assert wilson_interval(50, 100) == pytest.approx((centre - half, centre + half), abs=1e-9)
    assert wilson_interval(0, 0) == (0.0, 1.0)  # nothing measured: anything is possible


def test_wilson_interval_stays_within_zero_and_one_where_rounding_would_leave_it():
    ends = [wilson_interval(c, n) for n in range(1, 60) for c in (0, n)]  # e.g. 5/5 computes 1.0000000000000002
    assert min(low for low, _ in ends) == 0.0 and max(high for _, high in ends) == 1.0
    inside = [wilson_interval(c, n)[0] <= c / n <= wilson_interval(c, n)[1] for n in range(1, 300) for c in range(n + 1)]
    assert all(inside)  # 6/6's upper end computes 0.9999999999999999: an error bar below zero, which matplotlib refuses


def test_recall_and_hits_against_hand_computed_cases():
    found = [["a", "b", "c", "d"], ["x", "y", "z", "w"]]
    wanted = [["b", "d"], ["w", "q"]]
    assert recall_at_k(found, wanted, 1) == 0.0
    assert recall_at_k(found, wanted, 2) == pytest.approx((1 / 2 + 0) / 2)
    assert recall_at_k(found, wanted, 4) == pytest.approx((2 / 2 + 1 / 2) / 2)
    assert hits([[2, 0, 1], [0, 1, 2], [1, 2, 0]], [0, 0, 0], ks=(1, 2, 3)) == {"hits@1": 1 / 3, "hits@2": 2 / 3, "hits@3": 1.0}
    assert recall_at_k([["a"]], [["a"]], 1) == 1.0 and hits([[0, 1]], [0], ks=(1,)) == {"hits@1": 1.0}  # one query
    assert recall_at_k([], [], 5) == 0.0 and hits([], [], ks=(1,)) == {"hits@1": 0.0}  # none


def test_vote_counts_and_tie_breaks_by_hand():
    assert majority_vote(["no", "yes", "no"], [-9.0, -0.1, -9.0]) == ("no", {"no": 2, "yes": 1})  # counts before mass
    assert majority_vote(["A", "B"], [-3.0, -1.0]) == ("B", {"A": 1, "B": 1})  # a tie: the likelier sample
    assert majority_vote(["A", "B"], [-1.0, None]) == ("A", {"A": 1, "B": 1})  # a missing log-probability: first seen


@pytest.mark.parametrize(("make", "message"), [
    (lambda: BM25DistillationKLLoss(target_temperature=0), "temperatures must be positive"),
    (lambda: BM25DistillationKLLoss(score_temperature=0), "temperatures must be positive"),
    (lambda: BM25DistillationKLLoss(target_temperature=-1, score_temperature=-1), "temperatures must be positive"),
    (lambda: TopCandidateCrossEntropyLoss(0), "the temperature must be positive"),
])
def test_a_temperature_must_be_positive(make, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        make()


@pytest.mark.parametrize("loss", [BM25DistillationKLLoss(), TopCandidateCrossEntropyLoss()])
def test_inputs_of_other_shapes_are_refused_with_their_shapes(loss):
    scores, targets = torch.zeros(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"scores \(2, 3\), targets \(2, 3\) and mask \(2, 4\) must match"):
        loss(scores, targets, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"targets \(2, 4\)"):
        loss(scores, torch.zeros(2, 4), torch.ones(2, 3, dtype=torch.bool))


def test_passages_and_questions_are_truncated_to_their_budgets():
    from kard_chain.reranker.model import reranker_text

    model = tiny_reranker("late_interaction", WORDS)
    model.config.max_question_tokens, model.config.max_passage_tokens = 5, 7
    long = " ".join(WORDS)
    assert model.embed_questions([long])[0].shape[1] == 5 and model.embed_passages([long])[0].shape[1] == 7
    assert reranker_text("Goat", "It gives milk.") == "Goat: It gives milk." and reranker_text("", "It gives milk.") == "It gives milk."


def test_a_reranker_saves_into_a_new_nested_folder_and_over_its_own_save(tmp_path):
    from kard_chain.reranker.model import KardReranker

    model = tiny_reranker("late_interaction", WORDS)
    folder = tmp_path / "runs" / "a" / "final"
    model.save_pretrained(folder)
    model.save_pretrained(folder)  # again, into the same folder
    again = KardReranker.from_pretrained(folder)
    assert again.config == model.config and torch.equal(again.head.weight, model.head.weight)


def test_cross_encoder_scores_equal_the_encoder_run_by_hand_on_the_pair():
    model = tiny_reranker("cross_encoder", WORDS).eval()
    model.config.max_passage_tokens = 9
    question, passages = "where does the zorb live", ["it lives in the marsh", "a very long passage text of the reef and the tundra"]
    by_hand = []
    for passage in passages:  # [CLS] question [SEP] passage [SEP], with segment ids, cut at 9 tokens
        enc = model.tokenizer(question, passage, truncation=True, max_length=9, return_tensors="pt")
        assert enc["token_type_ids"].sum() > 0  # the passage's segment is marked
        with torch.no_grad():
            by_hand.append(model.head(model.encoder(**enc).last_hidden_state[:, 0]).item())
    assert model.score([question], [passages])[0] == pytest.approx(by_hand, abs=1e-5)
    assert model.head.bias is not None and tiny_reranker("late_interaction", WORDS).head.bias is None  # MaxSim: no offset
