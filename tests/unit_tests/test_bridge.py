"""The bridge round: the second passage of a two-hop question, reached through the name the first passage adds."""

from __future__ import annotations

import asyncio

import pytest

from kard_chain.bm25.tokenizer import BM25Tokenizer
from kard_chain.records import Example, Passage
from kard_chain.retrievers.bm25 import BM25Retriever
from kard_chain.retrievers.bridge import ROUND, BridgeRetriever, interleave_rounds
from kard_chain.retrievers.hybrid import HybridRetriever
from kard_chain.student.format import StudentFormatter
from kard_chain.student.pairs import student_pairs

QUESTION = "What weather is usual where Amrin Toller was born?"


def people_and_places() -> list[Passage]:
    """A person born in Vessick among people who share his passage's template words; Vessick's passage shares no
    word with the question, and the template outweighs the town's name in any query made of his whole passage."""
    template = "later worked as a potter and kept a small house by the market"
    return [
        Passage(id="toller", title="Amrin Toller", text=f"Amrin Toller was born in Vessick. Amrin {template}."),
        *[Passage(id=f"person{i}", title=f"Person {i}", text=f"Dor{i} Kal{i} was born in Brel{i}. Dor{i} {template}.") for i in range(8)],
        *[Passage(id=f"town{i}", title=f"Brel{i}", text=f"Brel{i} is a province with a desert climate.") for i in range(8)],
        Passage(id="vessick", title="Vessick", text="Vessick is a province with an arctic climate, cold winds, long nights, "
                "few roads and many frozen lakes between its bare hills."),
    ]


def test_the_bridge_query_is_the_rarest_new_term_of_the_top_passage():
    passages = people_and_places()
    bm25 = BM25Retriever.from_passages(passages, k=3)
    tok = BM25Tokenizer()
    documents = [set(tok(p.title + " " + p.text)) for p in passages]
    frequency = {t: sum(t in d for d in documents) for d in documents for t in d}
    new = {t for t in tok(passages[0].text) if t not in set(tok(QUESTION))}
    rarest = sorted(new, key=lambda t: (frequency[t], t))  # brute force: fewest passages first
    assert rarest[0] == "vessick" and frequency["vessick"] == 2 and frequency[rarest[1]] == 9
    everything = BridgeRetriever(first=bm25, index=bm25, terms=2, max_df=1.0)
    assert everything.bridge_query(QUESTION, passages[0].text).split() == rarest[:2]
    names = BridgeRetriever(first=bm25, index=bm25, terms=2, max_df=0.1)  # in at most 5 of 18 passages: names only
    assert names.bridge_query(QUESTION, passages[0].text) == "vessick"
    assert names.bridge_query("Where was Amrin Toller of Vessick born?", passages[0].text) == ""  # nothing new to follow


def test_the_bridge_round_reaches_the_passage_no_one_round_query_does():
    owl = Passage(id="owl", title="Owl", text="The owl lives in Vessick.")  # shorter: BM25("vessick") ranks it above Vessick's article
    passages = [*people_and_places(), owl]
    bm25 = BM25Retriever.from_passages(passages, k=2)
    assert [d.metadata["id"] for d in bm25.invoke("vessick", k=2)] == ["owl", "vessick"]
    for query in (QUESTION, f"{QUESTION} {passages[0].text}", passages[0].text):  # the question, question + passage (MDR)
        assert "vessick" not in [d.metadata["id"] for d in bm25.invoke(query, k=5)]
    bridge = BridgeRetriever(first=bm25, index=bm25, k=2)
    docs = bridge.invoke(QUESTION)
    assert [(d.metadata["id"], d.metadata[ROUND]) for d in docs] == [("toller", 1), ("vessick", 2)]
    assert [d.metadata["id"] for d in bridge.invoke(QUESTION, k=3)] == ["toller", "vessick", docs_of(bm25, QUESTION)[1]]
    assert [[d.metadata["id"] for d in ds] for ds in bridge.batch([QUESTION, "Where is Vessick?"])] == [
        ["toller", "vessick"], [d.metadata["id"] for d in bridge.invoke("Where is Vessick?")]]
    assert [d.metadata["id"] for d in asyncio.run(bridge.ainvoke(QUESTION, k=1))] == ["toller"]


def docs_of(retriever: BM25Retriever, query: str) -> list[str]:
    return [d.metadata["id"] for d in retriever.invoke(query, k=5)]


def test_interleave_rounds_takes_turns_without_repeats():
    bm25 = BM25Retriever.from_passages(people_and_places(), k=5)
    first, second = bm25.invoke("Dor0 Dor1 Dor2"), bm25.invoke("Dor1 Brel5")
    merged = interleave_rounds(first, second, 4)
    ids = [d.metadata["id"] for d in merged]
    assert len(set(ids)) == 4 and ids[0] == first[0].metadata["id"]
    assert [d.metadata[ROUND] for d in merged] == [1, 2, 1, 2]
    assert ids[1] == next(d.metadata["id"] for d in second if d.metadata["id"] != ids[0])  # round 2's first new passage
    assert len(interleave_rounds(first[:1], [], 4)) == 1


def test_the_bridge_needs_a_bm25_index():
    bm25 = BM25Retriever.from_passages(people_and_places())
    with pytest.raises(TypeError, match="index must be a BM25Retriever"):
        BridgeRetriever(first=bm25, index=HybridRetriever(retrievers=[bm25]))


def test_the_bridge_passes_k_callbacks_and_ids_down_and_keeps_untitled_passages():
    """Both rounds are traced as child runs of the bridge's own, each asked for its own k (not its retriever's
    default); passages keep their ids; second-round passages without a title stay after the titled ones."""
    from langchain_core.callbacks import BaseCallbackHandler

    class Starts(BaseCallbackHandler):
        def __init__(self):
            self.runs = []

        def on_retriever_start(self, serialized, query, *, run_id, parent_run_id=None, **kwargs):
            self.runs.append((query, parent_run_id is not None))

    owl = Passage(id="owl", title="", text="The owl of Vessick hunts at night near frozen lakes.")
    passages = [*people_and_places(), owl]
    narrow = BM25Retriever.from_passages(passages, k=1)  # default k 1: the bridge must ask for more
    starts = Starts()
    docs = BridgeRetriever(first=narrow, index=narrow, k=3, candidates=5).invoke(QUESTION, config={"callbacks": [starts]})
    assert starts.runs == [(QUESTION, False), (QUESTION, True), ("vessick", True)]
    assert [(d.metadata["id"], d.metadata[ROUND]) for d in docs] == [("toller", 1), ("vessick", 2), (docs_of(narrow, QUESTION)[1], 1)]
    assert all(d.id == d.metadata["id"] for d in docs)
    four = BridgeRetriever(first=narrow, index=narrow, k=4, candidates=5).invoke(QUESTION)
    assert [d.metadata["id"] for d in four][:2] == ["toller", "vessick"] and "owl" in [d.metadata["id"] for d in four]
    nothing = BM25Retriever.from_passages(passages, k=2)
    assert BridgeRetriever(first=nothing, index=nothing).invoke("zzz unknown words") == []  # round 1 empty: no round 2
    with pytest.raises(TypeError, match="got HybridRetriever"):
        BridgeRetriever(first=nothing, index=HybridRetriever(retrievers=[nothing]))


def test_student_pairs_read_the_bridge_round_as_served():
    passages = people_and_places()
    bm25 = BM25Retriever.from_passages(passages, k=2)
    example = Example(id="q1", question=QUESTION, options={"A": "freezing snow", "B": "dry heat"}, answer="A",
                      reference_rationale="Amrin Toller was born in Vessick, an arctic province: freezing snow.")
    fmt = StudentFormatter.load()
    plain = student_pairs("kard", [example], fmt, reference=True, retriever=bm25, k=2, passages_from="question", show_progress=False)
    bridged = student_pairs("kard", [example], fmt, reference=True, retriever=BridgeRetriever(first=bm25, index=bm25, k=2), k=2,
                            passages_from="question", show_progress=False)
    assert "vessick" not in plain[0].passage_ids and bridged[0].passage_ids == ["toller", "vessick"]
