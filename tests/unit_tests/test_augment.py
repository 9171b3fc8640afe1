"""Counterfactual copies of the student's training pairs: the gold option (or a yes/no question's value) swapped in
passages, rationale and label."""

import pytest

from kard_chain.records import Example, Passage
from kard_chain.retrievers.bm25 import BM25Retriever
from kard_chain.student.augment import counterfactuals, swap_phrases, value_slots, yes_no_counterfactuals
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
    assert sorted(cf.answer for cf in copies) == ["B", "C", "D"]  # three copies, each another answer
    assert all(cf.question == ex.question for cf in copies)
    for _, letter, rationale, swapped in copies:
        new = DIETS[letter]
        assert rationale.startswith(f"The velomar feeds on {new}.")
        assert swapped[0].text == f"The velomar feeds on {new}."
        assert [p.id for p in swapped] == ["p1", "p2"]
        if letter != "D":  # the other passage's mention of the new answer now reads "fish": the world stays consistent
            assert "fish" in swapped[1].text and new not in swapped[1].text
    assert passages[0].text == "The velomar feeds on fish."  # the originals are untouched
    assert counterfactuals(ex, "r", passages, copies=1, key="q1#0") == counterfactuals(ex, "r", passages, copies=1, key="q1#0")
    assert len({counterfactuals(ex, "r", passages, copies=1, key=f"q1#{i}")[0].answer for i in range(12)}) > 1  # drawn per key
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


COLOURS = ("red", "blue", "green", "yellow")


def test_value_slots_find_the_word_that_other_questions_of_the_template_ask_instead():
    names = ["velomar", "dolva", "kesh", "tarn", "brel", "quor", "sild", "yant"]
    coloured = [f"Is the {name} {colour}?" for name, colour in zip(names, COLOURS * 2)]
    others = ["Is the zorb a bird?", "Is the quill green or blue?", "Was the mip ever seen in Mervillen?"]
    slots = value_slots(coloured + others, min_count=2, min_questions=8)
    for q in coloured:  # names are rarer than min_count: wildcards, never values; "is" and "the" are stop words
        assert slots[q] == {q.split()[-1].rstrip("?"): frozenset(COLOURS)}
    assert not set(others) & set(slots)  # no other question shares their template
    assert value_slots(coloured + others, min_count=2, min_questions=9) == {}  # a template of 8 questions is too rare
    # at min_count 3 only green and blue (in three questions each) are words; red and yellow are wildcards like names
    assert value_slots(coloured + others, min_count=3, min_questions=2) == {q: {q.split()[-1].rstrip("?"): frozenset({"green", "blue"})}
                                                           for q in coloured if "green" in q or "blue" in q}


def _yes_no(name: str, asked: str, colour: str) -> tuple[Example, str, list[Passage]]:
    answer = "yes" if asked == colour else "no"
    ex = Example(id=name, question=f"Is the {name} {asked}?", answer=answer)
    passages = [Passage(id=name, title=name.title(), text=f"Seen from afar, the {name} shows {colour} fur."),
                Passage(id="other", title="Dolva", text="The dolva is red and lives in Mervillen.")]
    return ex, f"The {name} has {colour} fur. So the answer is {answer}.", passages


@pytest.mark.parametrize(("asked", "colour"), [("blue", "blue"), ("blue", "green"), ("red", "yellow")])
def test_a_yes_no_copy_flips_the_answer_by_swapping_the_stated_value_and_a_second_keeps_it(asked, colour):
    slots = value_slots([f"Is the n{i} {c}?" for i, c in enumerate(COLOURS * 2)] + [f"Is the velomar {asked}?"], min_count=2, min_questions=2)
    ex, rationale, passages = _yes_no("velomar", asked, colour)
    stated_values = set()
    for key in (f"velomar#{i}" for i in range(24)):  # many draws: a wrong label must not hide behind one lucky key
        flipped, kept = yes_no_counterfactuals(ex, rationale, passages, copies=2, key=key, slots=slots)
        assert flipped.answer != ex.answer and kept.answer == ex.answer
        for cf in (flipped, kept):
            asked_now = cf.question.split()[-1].rstrip("?")
            stated = next(c for c in COLOURS if f"shows {c} fur" in cf.passages[0].text)
            stated_values.add(stated)
            assert cf.rationale == f"The velomar has {stated} fur."  # the rationale says what the passage says, no stale answer
            assert cf.answer == ("yes" if stated == asked_now else "no")  # the label follows the comparison, whatever it is
            assert [p.id for p in cf.passages] == ["velomar", "other"]
        assert len({flipped.passages[0].text, kept.passages[0].text, passages[0].text}) == 3  # each copy states another value
        assert flipped.question == ex.question and (kept.question != ex.question) == (ex.answer == "yes")  # a yes is renamed
        assert yes_no_counterfactuals(ex, rationale, passages, 1, key, slots) == [flipped]
        assert yes_no_counterfactuals(ex, rationale, passages, 2, key, slots) == [flipped, kept]  # seeded by the key
    assert stated_values == set(COLOURS) - {colour}  # across keys the copies state every value but the original
    # none where it cannot be made honestly
    assert yes_no_counterfactuals(ex, "The velomar is shy.", passages, 2, "k", slots) == []  # no value stated
    if ex.answer == "no":  # the rationale states two values besides the asked one: which one it read is unclear
        two = f"It has {colour} or {next(c for c in COLOURS if c not in (asked, colour))} fur."
        assert yes_no_counterfactuals(ex, two, passages + [Passage(id="x", title="X", text=two)], 2, "k", slots) == []
    assert yes_no_counterfactuals(ex, rationale, passages, 0, "k", slots) == []
    assert yes_no_counterfactuals(ex, rationale, passages, 2, "k", {}) == []  # no slot for this question
    assert yes_no_counterfactuals(ex.model_copy(update={"options": DIETS, "answer": "A"}), rationale, passages, 2, "k", slots) == []


def test_kard_pairs_get_yes_no_copies_only_when_asked_for():
    names = [f"beast{i}" for i in range(12)]  # each colour is asked three times: a value slot at the default min_count
    asked, colours = list(COLOURS * 3), list(COLOURS[1:] + COLOURS[:1]) * 2 + list(COLOURS)
    passages = [Passage(id=n, title=n.title(), text=f"The {n} has {c} fur.") for n, c in zip(names, colours)]
    train = [Example(id=n, question=f"Is the {n} {a}?", answer="yes" if a == c else "no", reference_rationale=f"The {n} has {c} fur.")
             for n, a, c in zip(names, asked, colours)]
    fmt = StudentFormatter.load()
    retriever = BM25Retriever.from_passages(passages, k=1)
    assert all("~" not in p.id for p in student_pairs("kard", train, fmt, reference=True, retriever=retriever, k=1, counterfactual=2,
                                                      show_progress=False))
    pairs = student_pairs("kard", train, fmt, reference=True, retriever=retriever, k=1, counterfactual=2, yes_no_counterfactual=True,
                          show_progress=False)
    by_id = {p.id: p for p in pairs}
    assert sorted(i for i in by_id if "~" in i) == sorted(f"{n}#0~cf{j}" for n in names for j in (0, 1))
    for n, e in zip(names, train):
        assert by_id[f"{n}#0~cf0"].target.endswith("no." if e.answer == "yes" else "yes.")  # the first copy flips
        assert by_id[f"{n}#0~cf1"].target.endswith(f"{e.answer}.")


def test_swap_phrases_takes_the_longer_phrase_first_and_keeps_titles_in_step():
    """A phrase that starts the other ("sea" in "sea lion") is swapped whole; equal or empty phrases leave the text
    alone; a passage's title is swapped with its text."""
    from kard_chain.student.augment import _swapped

    assert swap_phrases("The sea lion is not the sea.", "sea", "sea lion") == "The sea is not the sea lion."
    assert swap_phrases("The sea lion is not the sea.", "sea lion", "sea") == "The sea is not the sea lion."
    assert swap_phrases("Red, red and blue.", "Red", "red") == "Red, red and blue."
    assert swap_phrases("Red, red and blue.", "red", "RED") == "Red, red and blue."
    assert swap_phrases("Red and blue.", "", "blue") == "Red and blue." and swap_phrases("Red and blue.", "red", "") == "Red and blue."
    [passage] = _swapped([Passage(id="p", title="Red fox", text="The red fox is not blue.")], "red", "blue")
    assert (passage.title, passage.text) == ("Blue fox", "The blue fox is not red.")


def test_value_slots_default_to_ten_questions_and_a_template_is_the_whole_question_but_its_slot():
    names = [f"ilk{i}" for i in range(10)]
    ten = [f"Is the {n} {c}?" for n, c in zip(names, ["red", "green"] * 5)]
    assert set(value_slots(ten)) == set(ten) and value_slots(ten[:9]) == {}  # min_questions defaults to 10
    # the same ten, half asked "now" and half "later": the colour's template includes the word after it, so no
    # template of ten remains
    timed = [q.replace("?", " now?" if i % 2 else " later?") for i, q in enumerate(ten)]
    assert value_slots(timed) == {}


def _seasons(name: str, asked: str, season: str, answer: str) -> tuple[Example, str, list[Passage], dict]:
    """A question with two value slots, a colour and a season, whose rationale states only the season."""
    colours, seasons = ["red", "green", "blue"], ["winter", "summer", "spring"]
    questions = [f"Is the n{i} {c} in {s}?" for i, (c, s) in enumerate((c, s) for c in colours for s in seasons)]
    slots = value_slots([*questions, f"Is the {name} red in {asked}?"], min_count=3, min_questions=3)
    ex = Example(id=name, question=f"Is the {name} red in {asked}?", answer=answer)
    passages = [Passage(id=name, title=name.title(), text=f"The {name} sheds in {season}.")]
    return ex, f"The {name} sheds in {season}.", passages, slots


@pytest.mark.parametrize(("asked", "season", "answer"), [("winter", "winter", "yes"), ("winter", "summer", "no")])
def test_a_slot_the_rationale_does_not_state_is_passed_over_for_the_next(asked, season, answer):
    ex, rationale, passages, slots = _seasons("velomar", asked, season, answer)
    assert list(slots[ex.question]) == ["red", asked]  # the colour comes first, and no passage states one
    flipped = yes_no_counterfactuals(ex, rationale, passages, 1, "k", slots)[0]
    assert flipped.answer != answer and season not in flipped.rationale and "red" in flipped.question


@pytest.mark.parametrize("fillers", [2, 3])
def test_a_slot_of_two_fillers_gives_the_flipped_copy_and_of_three_both(fillers):
    colours = COLOURS[:fillers]
    slots = value_slots([f"Is the n{i} {c}?" for i, c in enumerate(colours * 3)] + ["Is the velomar blue?"], min_count=2, min_questions=2)
    assert slots["Is the velomar blue?"] == {"blue": frozenset(colours)}
    ex, rationale, passages = _yes_no("velomar", "blue", "blue")
    copies = yes_no_counterfactuals(ex, rationale, passages, copies=2, key="k", slots=slots)
    assert [c.answer for c in copies] == (["no"] if fillers == 2 else ["no", "yes"])  # a yes has no third value to rename to
    assert all(c.rationale != rationale.split(" So")[0] for c in copies)


def test_a_multiple_choice_example_gets_no_yes_no_copy_even_when_its_letters_are_yes_and_no():
    slots = value_slots([f"Is the n{i} {c}?" for i, c in enumerate(COLOURS * 2)] + ["Is the velomar blue?"], min_count=2, min_questions=2)
    ex, rationale, passages = _yes_no("velomar", "blue", "blue")
    assert yes_no_counterfactuals(ex, rationale, passages, 2, "k", slots)  # as a yes/no question it has copies
    lettered = ex.model_copy(update={"options": {"yes": "blue", "no": "green"}})
    assert yes_no_counterfactuals(lettered, rationale, passages, 2, "k", slots) == []  # options: counterfactuals()'s case


def test_a_copy_never_swaps_in_an_option_that_repeats_the_gold_text():
    ex = Example(id="q", question="What does the panda eat?", options={"A": "Bamboo", "B": "bamboo", "C": "fish", "D": "seeds"},
                 answer="A")
    passages = [Passage(id="p", title="Panda", text="The panda eats bamboo.")]
    for key in (f"q#{i}" for i in range(12)):
        copies = counterfactuals(ex, "The panda eats bamboo.", passages, copies=3, key=key)
        assert sorted(c.answer for c in copies) == ["C", "D"]  # B says what A says: swapping it in would change nothing
