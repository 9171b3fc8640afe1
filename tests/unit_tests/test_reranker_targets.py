"""The reranker's targets: the rationale's sentences as BM25 queries, and the mean of their softmaxes."""

import math
import random

import pytest

from kard_chain.reranker.targets import log_mixture, rationale_sentences, target_queries


def test_sentences_drop_the_closing_answer_and_keep_a_rationale_without_one():
    text = "Zorbs live in marshes. Marshes are wet!  Are they? So the answer is yes."
    assert rationale_sentences(text) == ["Zorbs live in marshes.", "Marshes are wet!", "Are they?"]
    assert rationale_sentences("Therefore, the answer is no.") == ["Therefore, the answer is no."]
    assert rationale_sentences("no full stop here") == ["no full stop here"]


def test_target_queries_of_each_kind():
    q, r = "Is a zorb wet?", "Zorbs live in marshes. Marshes are wet. Thus the answer is yes."
    assert target_queries(q, r, "rationale") == [r]
    assert target_queries(q, r, "sentences") == ["Zorbs live in marshes.", "Marshes are wet."]
    assert target_queries(q, r, "question+sentences") == [f"{q} Zorbs live in marshes.", f"{q} Marshes are wet."]
    with pytest.raises(ValueError, match="target_queries: 'facts'"):
        target_queries(q, r, "facts")


def softmax(row, tau):
    weights = [math.exp(s / tau) for s in row]
    return [w / sum(weights) for w in weights]


@pytest.mark.parametrize("seed", range(5))
def test_log_mixture_is_the_log_of_the_mean_softmax(seed):
    rng = random.Random(seed)
    n, queries, tau = rng.randint(2, 9), rng.randint(1, 4), rng.choice([0.5, 1.0, 3.0])
    scores = [[rng.uniform(0, 12) for _ in range(n)] for _ in range(queries)]
    expected = [sum(softmax(row, tau)[i] for row in scores) / queries for i in range(n)]
    assert log_mixture(scores, tau) == pytest.approx([math.log(p) for p in expected], rel=1e-9, abs=1e-12)


def test_one_query_gives_kards_softmax_and_far_candidates_stay_finite():
    scores = [[2.0, 5.0, 1.0]]
    assert [math.exp(x) for x in log_mixture(scores, 2.0)] == pytest.approx(softmax(scores[0], 2.0))
    for tau in (1.0, 0.5, 3.0):  # exp underflows (and overflows, unless shifted by the scaled maximum): the logs must not
        far = log_mixture([[0.0, 5000.0], [3000.0, 0.0]], tau)
        assert all(math.isfinite(x) for x in far)
        assert far[0] == pytest.approx(math.log(0.5)) and far[1] == pytest.approx(math.log(0.5))
    with pytest.raises(ValueError, match="^log_mixture: no queries or no candidates$"):
        log_mixture([], 1.0)

