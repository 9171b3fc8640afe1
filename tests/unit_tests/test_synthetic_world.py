"""The demo's world: disjoint train/test entities, every question answerable from the knowledge base."""

from kard_chain.demo.run import REFERENCE_TEACHER, reference_teacher
from kard_chain.demo.world import WEATHER, build_world, edit_world
from kard_chain.bm25.tokenizer import BM25Tokenizer
from kard_chain.retrievers.bm25 import BM25Retriever


def mentioned(examples, world):
    """Entities a question is about, and the entities its evidence passages are about."""
    entity_of = {p.id: p.metadata["entity"] for p in world.passages if "entity" in p.metadata}
    return {entity_of.get(i, i) for e in examples for i in [e.metadata["entity"], *e.evidence_ids]}


def test_train_and_test_questions_are_about_disjoint_entities():
    world = build_world("small", seed=3)
    assert len(world.train) == 900 and len(world.test) == 300
    assert mentioned(world.train, world).isdisjoint(mentioned(world.test, world))
    # and no test entity's name occurs in any training question
    test_names = {world.entities[i].name.lower() for i in mentioned(world.test, world)}
    train_text = " ".join(e.question.lower() for e in world.train)
    assert not any(name in train_text for name in test_names)


def assert_answerable(e, gold, by_id):
    """``gold`` is what ``e``'s evidence passages (in ``by_id``) say, and no other option is."""
    first = by_id[e.evidence_ids[0]].text.lower()
    kind = e.metadata["type"]
    if kind == "colour":
        assert (e.metadata["asked"] in first) == (gold == "yes"), e
    elif kind == "weather":
        place = by_id[e.evidence_ids[1]]
        assert place.title.lower() in first  # hop 1 names the birthplace
        stated = [k for k, w in WEATHER.items() if k in place.text]  # hop 2 states its climate, one of them
        assert [WEATHER[c] for c in stated] == [e.options[gold]], e
    else:
        assert [k for k, v in e.options.items() if v in first] == [gold], e


def test_every_question_is_answerable_from_its_evidence_passages():
    world = build_world("tiny", seed=1)
    by_id = {p.id: p for p in world.passages}
    for e in world.train + world.test:
        assert_answerable(e, e.answer, by_id)


def test_second_hop_passages_share_no_words_with_their_questions():
    world = build_world("small")
    by_id = {p.id: p for p in world.passages}
    words = BM25Tokenizer()
    two_hop = [e for e in world.test if e.metadata["hops"] == 2]
    assert len(two_hop) >= 50
    for e in two_hop:  # BM25 of the question scores the place's passage zero: no shared term, title included
        place = by_id[e.evidence_ids[1]]
        assert not set(words(place.title + " " + place.text)) & set(words(e.question)), e
        assert e.metadata["second_hop_disjoint"]


def test_the_diet_passage_is_what_bm25_of_the_question_misses_and_of_the_rationale_finds():
    """Item 3 of the demo: five passages per organism, the food passage worded unlike the question and the longest."""
    world = build_world("small", seed=2)
    bm25 = BM25Retriever.from_passages(world.passages, k=3)
    diet = [e for e in world.test if e.metadata["type"] == "diet"]
    assert all(len([p for p in world.passages if p.metadata.get("entity") == e.metadata["entity"]]) == 5 for e in diet)
    by_question = bm25.batch([e.question for e in diet])
    by_rationale = bm25.batch([world.rationales[e.id][0] for e in diet])
    assert not any(e.evidence_ids[0] in [d.metadata["id"] for d in ds] for e, ds in zip(diet, by_question))
    assert all(ds[0].metadata["id"] == e.evidence_ids[0] for e, ds in zip(diet, by_rationale))


def test_the_world_is_seeded():
    a, b, c = build_world("tiny", seed=5), build_world("tiny", seed=5), build_world("tiny", seed=6)
    assert [p.text for p in a.passages] == [p.text for p in b.passages] != [p.text for p in c.passages]


def test_editing_changes_the_knowledge_base_and_the_answers_it_implies():
    world = build_world("small")
    passages, new_gold = edit_world(world, share=0.5)
    old = {p.id: p.text for p in world.passages}
    changed = [p for p in passages if p.text != old[p.id]]
    assert changed and all(world.entities[p.metadata["entity"]].split == "test" for p in changed)
    assert [p.id for p in passages] == list(old)  # edited in place: same passages, same order
    by_id = {p.id: p for p in passages}
    for e in world.test:  # every test question, edited or not, is answered by the edited knowledge base
        assert_answerable(e, new_gold.get(e.id, e.answer), by_id)
    kinds = {world.test[[e.id for e in world.test].index(q)].metadata["type"] for q in new_gold}
    assert len(new_gold) > 30 and kinds == {"colour", "diet", "trade"}  # places stay: no two-hop answer changes


def test_the_offline_teacher_writes_kept_reference_rationales():
    world = build_world("tiny")
    rationales = reference_teacher(world).invoke(world.train[0])
    assert len(rationales) == 3 and all(r.kept and r.model == REFERENCE_TEACHER for r in rationales)
    assert rationales[0].text.startswith(world.rationales[world.train[0].id][0])
