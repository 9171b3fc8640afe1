"""Counterfactual copies of the student's training pairs: the gold option swapped in passages, rationale and label."""

import pytest

from kard_chain.records import Example, Passage
from kard_chain.retrievers.bm25 import BM25Retriever
from kard_chain.student.augment import counterfactuals, swap_phrases
from kard_chain.student.format import StudentFormatter
from kard_chain.student.pairs import student_pairs

DIETS = {"A": "fish", "B": "seeds", "C": "green leaves", "D": "insects"}


def test_swap_phrases_swaps_whole_words_both_ways_and_keeps_a_capital():
    text = "Fish eat seeds; the fisher's catfish eat fish, and Green leaves feed no one."
    assert swap_phrases(text, "fish", "green leaves") == (
        "Green leaves eat seeds; the fisher's catfish eat green leaves, and Fish feed no one.")
    assert swap_phrases(text, "fish", "FISH") == text


def test_a_counterfactual_copy_swaps_the_gold_option_in_the_passages_and_the_rationale_and_relabels_it():
    ex = Example(id="q1", question="What does the velomar feed on?", options=DIETS, answer="A")
    passages = [Passage(id="p1", title="Velomar", text="The velomar feeds on fish."),
                Passage(id="p2", title="Dolva", text="The dolva eats seeds and, in winter, green leaves.")]
    copies = counterfactuals(ex, "The velomar feeds on fish. So the answer is (A) fish.", passages, copies=3, key="q1#0")
    assert sorted(letter for letter, _, _ in copies) == ["B", "C", "D"]  # three copies, each another answer
    for letter, rationale, swapped in copies:
        new = DIETS[letter]
        assert rationale.startswith(f"The velomar feeds on {new}.")
        assert swapped[0].text == f"The velomar feeds on {new}."
        assert [p.id for p in swapped] == ["p1", "p2"]
        if letter != "D":  # the other passage's mention of the new answer now reads "fish": the world stays consistent
            assert "fish" in swapped[1].text and new not in swapped[1].text
    assert passages[0].text == "The velomar feeds on fish."  # the originals are untouched
    assert counterfactuals(ex, "r", passages, copies=1, key="q1#0") == counterfactuals(ex, "r", passages, copies=1, key="q1#0")
    assert len({counterfactuals(ex, "r", passages, copies=1, key=f"q1#{i}")[0][0] for i in range(12)}) > 1  # drawn per key
    # no copy where it cannot be made honestly: no options, a gold answer no passage quotes, none asked for
    assert counterfactuals(ex.model_copy(update={"options": None, "answer": "yes"}), "r", passages, 1, "k") == []
    assert counterfactuals(ex.model_copy(update={"answer": "D"}), "r", passages, 1, "k") == []
    assert counterfactuals(ex, "r", passages, 0, "k") == []


def test_kard_pairs_get_counterfactual_copies_and_rd_pairs_do_not():
    animals = ["goat", "crow", "frog", "swan"]
    diets = ["A", "B", "D", "A"]
    passages = [Passage(id=a, title=a.title(), text=f"The {a} feeds on {DIETS[d]} near the river.") for a, d in zip(animals, diets)]
    train = [Example(id=a, question=f"What does the {a} feed on?", options=DIETS, answer=d,
                     reference_rationale=f"The {a} feeds on {DIETS[d]}.") for a, d in zip(animals, diets)]
    train.append(Example(id="yn", question="Is the goat a bird?", answer="no", reference_rationale="The goat feeds on fish."))
    fmt = StudentFormatter.load()
    retriever = BM25Retriever.from_passages(passages, k=2)
    plain = student_pairs("kard", train, fmt, reference=True, retriever=retriever, k=2, show_progress=False)
    pairs = student_pairs("kard", train, fmt, reference=True, retriever=retriever, k=2, counterfactual=1, show_progress=False)
    by_id = {p.id: p for p in pairs}
    assert [p.id for p in pairs if "~" not in p.id] == [p.id for p in plain]
    assert sorted(i for i in by_id if "~" in i) == sorted(f"{a}#0~cf0" for a in animals)  # the yes/no pair has none
    for a, d in zip(animals, diets):
        original, copy = by_id[f"{a}#0"], by_id[f"{a}#0~cf0"]
        new = next(letter for letter, text in DIETS.items() if copy.target.endswith(f"{text} ({letter})."))
        assert new != d and copy.passage_ids == original.passage_ids
        assert f"The {a} feeds on {DIETS[new]} near the river." in copy.source
        assert f"The {a} feeds on {DIETS[d]} near the river." in original.source
    assert all("~" not in p.id for p in student_pairs("rd", train, fmt, reference=True, counterfactual=2, show_progress=False))
    with pytest.raises(ValueError):
        from kard_chain.student.config import StudentTrainingConfig

        StudentTrainingConfig(model="m", pairs="p.jsonl", counterfactual=-1)
