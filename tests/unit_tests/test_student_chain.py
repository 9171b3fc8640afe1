"""The student's formatter, the inference chain's vote, and the chain as an agent's tool (fake LLMs)."""

import asyncio
import json
from typing import Any

import pytest
from langchain_core.language_models import BaseLLM
from langchain_core.outputs import Generation, LLMResult

from kard_chain import BM25Retriever, Example, Passage
from kard_chain.answers import majority_vote
from kard_chain.chains import answer_tool, build_kard_chain, build_rd_chain
from kard_chain.student.format import StudentFormatter
from kard_chain.student.pairs import student_pairs
from tests.unit_tests.copy_task import copy_task


class ScriptedLLM(BaseLLM):
    """Returns ``n`` scripted samples per prompt (cycling ``texts``), with scripted log-probabilities."""

    texts: list[str]
    logprobs: list[float | None] | None = None
    prompts: list[str] = []

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, prompts, stop=None, run_manager=None, n: int = 1, **kwargs: Any) -> LLMResult:
        self.prompts.extend(prompts)
        lps = self.logprobs or [None] * len(self.texts)
        return LLMResult(generations=[
            [Generation(text=self.texts[i % len(self.texts)], generation_info={"logprob": lps[i % len(lps)]}) for i in range(n)]
            for _ in prompts
        ])


def test_majority_vote_and_its_tie_breaks():
    assert majority_vote(["A", "B", "A", None]) == ("A", {"A": 2, "B": 1})
    assert majority_vote(["B", "A"], None) == ("B", {"B": 1, "A": 1})  # no log-probabilities: first seen
    assert majority_vote(["B", "A", "A", "B"], [-5.0, -1.0, -1.5, -4.0]) == ("A", {"B": 2, "A": 2})  # -2.5 beats -9
    assert majority_vote([None, None]) == (None, {})


def test_formatter_cuts_passages_to_the_budget_and_counts_what_it_leaves_out():
    fmt = StudentFormatter.load(max_passage_tokens=20, min_passage_tokens=8)
    long = [Passage(id=f"p{i}", title=f"T{i}", text=" ".join(f"w{i}_{j}" for j in range(30))) for i in range(3)]
    src = fmt.source("Why?", None, long)
    assert src.passage_ids == ["p0", "p1"] and src.truncated == 2 and src.omitted == 1
    assert "(1 more passages left out for length)" in src.text
    assert "w0_9 ..." in src.text and "w0_10" not in src.text  # 10 words each
    short = fmt.source("Why?", {"A": "x", "B": "y"}, long[:1] and [Passage(id="s", title="S", text="tiny")])
    assert short.truncated == 0 and short.omitted == 0 and "(A) x (B) y" in short.text and "more passages" not in short.text


def test_formatter_counts_tokens_with_the_students_tokenizer():
    from kard_chain.testing.scratch_models import word_tokenizer

    tok = word_tokenizer(["alpha beta , gamma . delta"])
    fmt = StudentFormatter.load(tokenizer=tok, max_passage_tokens=4, min_passage_tokens=4)
    src = fmt.source("q", None, [Passage(id="p", text="alpha beta, gamma. delta")])
    assert "alpha beta, gamma ..." in src.text and src.truncated == 1  # 4 tokens: alpha beta , gamma


def test_target_ends_in_the_answers_words():
    fmt = StudentFormatter.load()
    opts = {"A": "red", "B": "blue"}
    assert fmt.target("The sky is blue. So the answer is (B).", "B", opts) == "The sky is blue. So the answer is blue (B)."
    assert fmt.target(None, "B", opts) == "blue (B)" and fmt.target(None, "yes", None) == "yes"


@pytest.fixture
def world():
    train, test, passages = copy_task(n_train=6, n_test=4)
    return train, test, BM25Retriever.from_passages(passages, k=2)


def test_training_input_and_inference_input_are_the_same_text(world):
    train, _, retriever = world
    fmt = StudentFormatter.load()
    pairs = student_pairs("kard", train, fmt, reference=True, retriever=retriever, k=2, show_progress=False)
    # at inference the chain retrieves with the question; give it a retriever that returns the
    # training pair's passages so both sides see the same passages
    ex = train[0]
    docs = retriever.invoke(ex.reference_rationale)
    llm = ScriptedLLM(texts=["x. So the answer is (A) red."])

    class Fixed(BM25Retriever):
        def search(self, queries, k=None):  # invoke and the vectorised batch both search
            return [docs for _ in queries]

    fixed = Fixed(index=retriever.index, k=2)
    build_kard_chain(fixed, llm, k=2, n=1, formatter=fmt).invoke(ex)
    assert llm.prompts == [pairs[0].source]
    assert pairs[0].passage_ids == [d.metadata["id"] for d in docs][:2]


def test_kard_chain_votes_and_cites_passages(world):
    _, test, retriever = world
    ex = test[0]
    texts = ["a. So the answer is (B) blue.", "b. So the answer is (C) green.", "c. So the answer is (B) blue.", "no idea"]
    chain = build_kard_chain(retriever, ScriptedLLM(texts=texts), k=2, n=4)
    out = chain.invoke(ex)
    assert out["answer"] == "B" and out["votes"] == {"B": 2, "C": 1}
    assert [r["answer"] for r in out["rationales"]] == ["B", "C", "B", None]
    assert out["passages"][0]["id"] == ex.evidence_ids[0] and 1 <= len(out["passages"]) <= 2
    # batch (one generate call for all), ainvoke, and str / dict inputs give the same votes
    llm = ScriptedLLM(texts=texts)
    outs = build_kard_chain(retriever, llm, k=2, n=4).batch([ex, {"question": ex.question, "options": ex.options}])
    assert [o["answer"] for o in outs] == ["B", "B"] and len(llm.prompts) == 2
    assert build_kard_chain(retriever, ScriptedLLM(texts=["So the answer is yes."]), n=3).invoke("is it?")["answer"] == "yes"


async def test_chains_ainvoke(world):
    _, test, retriever = world
    texts = ["So the answer is (D) yellow.", "So the answer is (A) red.", "So the answer is (D) yellow."]
    assert (await build_kard_chain(retriever, ScriptedLLM(texts=texts), k=1, n=3).ainvoke(test[1]))["answer"] == "D"
    out = await build_rd_chain(ScriptedLLM(texts=texts), n=3).ainvoke(test[1])
    assert out["answer"] == "D" and out["passages"] == []


def test_ties_go_to_the_higher_summed_logprob(world):
    _, test, retriever = world
    texts = ["So the answer is (A) red.", "So the answer is (B) blue."]
    llm = ScriptedLLM(texts=texts, logprobs=[-9.0, -2.0])
    assert build_rd_chain(llm, n=2).invoke(test[0])["answer"] == "B"
    assert build_rd_chain(ScriptedLLM(texts=texts), n=2).invoke(test[0])["answer"] == "A"  # none reported: first seen


def test_an_agent_calls_the_chain_as_a_tool_and_gets_the_voted_answer(world):
    agents = pytest.importorskip("langchain.agents")
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, ToolMessage

    _, test, retriever = world
    ex = test[2]
    chain = build_kard_chain(retriever, ScriptedLLM(texts=["So the answer is (C) green."]), k=2, n=3)
    tool = answer_tool(chain)

    class ToolCallingFake(GenericFakeChatModel):
        def bind_tools(self, tools, **kwargs):
            return self

    model = ToolCallingFake(messages=iter([
        AIMessage(content="", tool_calls=[{"name": "kard_answer", "args": {"question": ex.question, "options": ex.options}, "id": "call1"}]),
        AIMessage(content="It is green."),
    ]))
    agent = agents.create_agent(model=model, tools=[tool])
    result = agent.invoke({"messages": [("user", ex.question)]})
    (tool_msg,) = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    answered = json.loads(tool_msg.content)
    assert answered["answer"] == "C" and answered["votes"] == {"C": 3}
    assert answered["passages"][0]["id"] == ex.evidence_ids[0]
    assert result["messages"][-1].content == "It is green."


def test_kard_pairs_take_their_passages_from_the_rationale_the_question_or_both():
    """Three passages per animal, one per aspect: the question names the animal only, the rationale the colour."""
    animals, colours = ["goat", "crow", "frog", "swan", "mole", "hare"], ["red", "blue", "green", "pink", "grey", "gold"]
    passages = []
    for a, c in zip(animals, colours):
        passages += [Passage(id=f"{a}-home", text=f"The {a} lives in a burrow near water."),
                     Passage(id=f"{a}-size", text=f"The {a} is small and light for an animal."),
                     Passage(id=f"{a}-colour", text=f"The {a} is painted {c} by the locals.")]
    train = [Example(id=a, question=f"What colour is the {a}?", answer="yes", reference_rationale=f"The {a} is painted {c}.")
             for a, c in zip(animals, colours)]
    retriever = BM25Retriever.from_passages(passages, k=3)
    fmt = StudentFormatter.load()

    def ids(query):
        return [d.metadata["id"] for d in retriever.invoke(query)]

    built = {how: student_pairs("kard", train, fmt, reference=True, retriever=retriever, k=3, passages_from=how,
                                show_progress=False) for how in ("rationale", "question", "mixed")}
    for pairs in built.values():
        assert [p.example_id for p in pairs] == animals
    for i, ex in enumerate(train):
        by_rationale, by_question = ids(ex.reference_rationale), ids(ex.question)
        assert by_rationale[0] == f"{ex.id}-colour" and by_question[0] != by_rationale[0]  # the world works as meant
        assert built["rationale"][i].passage_ids == by_rationale
        assert built["question"][i].passage_ids == by_question
        mixed = built["mixed"][i].passage_ids
        assert sorted(mixed) == sorted([by_rationale[0], *[p for p in by_question if p != by_rationale[0]][:2]])
    orders = [p.passage_ids for p in built["mixed"]]
    assert {o.index(f"{a}-colour") for o, a in zip(orders, animals)} != {0}  # the rationale's passage is not always first
    again = student_pairs("kard", train, fmt, reference=True, retriever=retriever, k=3, passages_from="mixed", show_progress=False)
    assert [p.passage_ids for p in again] == orders  # the same order on every build
    with pytest.raises(ValueError, match="passages_from must be one of"):
        student_pairs("kard", train, fmt, reference=True, retriever=retriever, passages_from="answer")


def test_draft_guided_retrieval_reaches_the_second_hop():
    """The question names a person; the answer sits in a passage about the town the person was born
    in, which only the draft names. One round cannot reach it; the draft's round does."""
    passages = [Passage(id="toller", text="Amrin Toller was born in the town of Vessick."),
                *[Passage(id=f"river{i}", text=f"The river Ost{i} flows through Brel{i}.") for i in range(4)],
                Passage(id="gable", text="The river Gable flows through Vessick.")]
    retriever = BM25Retriever.from_passages(passages, k=2)
    question = "Which river flows through the town where Amrin Toller was born?"
    draft = "Amrin Toller was born in Vessick. So the answer is (B) Gable."
    options = {"A": "Ost0", "B": "Gable"}
    one_round = build_kard_chain(retriever, ScriptedLLM(texts=[draft]), k=2, n=3).invoke({"question": question, "options": options})
    assert "gable" not in [p["id"] for p in one_round["passages"]] and "draft" not in one_round
    assert "round" not in one_round["passages"][0]  # the paper's chain's output is unchanged

    class Counting(ScriptedLLM):
        calls: list[int] = []

        def _generate(self, prompts, stop=None, run_manager=None, n: int = 1, **kwargs: Any) -> LLMResult:
            self.calls.append(len(prompts))
            return super()._generate(prompts, stop, run_manager, n=n, **kwargs)

    for mode in ("draft", "question+draft"):
        llm = Counting(texts=[draft], prompts=[], calls=[])
        chain = build_kard_chain(retriever, llm, k=2, n=3, draft=mode)
        out = chain.invoke({"question": question, "options": options})
        assert [(p["id"], p["round"]) for p in out["passages"]] == [("toller", 1), ("gable", 2)]
        assert out["answer"] == "B" and out["votes"] == {"B": 3} and out["draft"] == draft
        first, final = llm.prompts  # one draft prompt, then the final samples' prompt
        assert "Vessick" in first and "Gable flows" not in first and "Gable flows" in final
        batched = chain.batch([{"question": question, "options": options}, {"question": "Where was Amrin Toller born?"}])
        assert batched[0]["passages"] == out["passages"] and [p["round"] for p in batched[1]["passages"]] == [1, 2]
        assert llm.calls[-2:] == [2, 2]  # a batch: one generate call for the drafts, one for the final samples
        assert asyncio.run(chain.ainvoke({"question": question, "options": options}))["passages"] == out["passages"]
    with pytest.raises(ValueError, match="draft must be None"):
        build_kard_chain(retriever, ScriptedLLM(texts=[draft]), k=2, draft="answer")


def test_kard_pairs_need_a_retriever_and_rationales(world):
    train, _, retriever = world
    fmt = StudentFormatter.load()
    with pytest.raises(ValueError, match="needs a retriever"):
        student_pairs("kard", train, fmt, reference=True)
    with pytest.raises(ValueError, match="no rationales"):
        student_pairs("rd", [Example(id="x", question="q?", answer="yes")], fmt)
    ft = student_pairs("ft", train, fmt)
    assert len(ft) == len(train) and ft[0].target == f"{train[0].options[train[0].answer]} ({train[0].answer})"


def test_a_batch_of_questions_is_one_generate_call(world):
    _, test, retriever = world

    class Counting(ScriptedLLM):
        calls: list[int] = []

        def _generate(self, prompts, stop=None, run_manager=None, n: int = 1, **kwargs: Any) -> LLMResult:
            self.calls.append(len(prompts))
            return super()._generate(prompts, stop, run_manager, n=n, **kwargs)

    llm = Counting(texts=["x. So the answer is red (A)."])
    outs = build_kard_chain(retriever, llm, k=2, n=3).batch(test)
    assert llm.calls == [len(test)] and all(len(o["rationales"]) == 3 for o in outs)
    rd = Counting(texts=["So the answer is yes."], calls=[])
    build_rd_chain(rd, n=2).batch(["a?", "b?", "c?"])
    assert rd.calls == [3]


def test_an_evaluation_resumed_after_a_kill_answers_as_an_uninterrupted_one(tmp_path):
    """Each batch is sampled from its own seed at a fixed position, so the answers do not depend on where a run stopped."""
    import torch

    from kard_chain.evaluation import evaluate_chain
    from kard_chain.records import Example

    class Sampling:  # a chain whose answers are draws from torch's generator
        def batch(self, examples):
            draws = torch.rand(len(examples)).tolist()
            return [{"answer": "yes" if d < 0.5 else "no", "votes": {}, "passages": [], "rationales": [{"text": f"{d:.6f}"}]}
                    for d in draws]

    examples = [Example(id=f"q{i}", question=f"q {i}?", answer="yes") for i in range(10)]
    whole = tmp_path / "whole.jsonl"
    evaluate_chain(Sampling(), examples, whole, batch_size=3, show_progress=False, seed=5)
    cut = tmp_path / "cut.jsonl"
    evaluate_chain(Sampling(), examples[:6], cut, batch_size=3, show_progress=False, seed=5)  # killed after two batches
    torch.manual_seed(123)  # whatever ran in between
    evaluate_chain(Sampling(), examples, cut, batch_size=3, show_progress=False, seed=5)
    assert whole.read_text() == cut.read_text()
