"""The student behind an OpenAI-compatible server (as vLLM or llama.cpp serve one): the same prompts, samples, parser
and vote as in-process, through the completions and the chat API, with a server that ignores ``n``, 5xx answers and a
hang past the client's timeout; a failure names the question and the server."""

import hashlib
from typing import Any

import pytest
from langchain_core.language_models import BaseLLM
from langchain_core.outputs import Generation, LLMResult

from kard_chain import BM25Retriever, build_kard_chain
from kard_chain.student.sampling import StudentCallError, sample_n
from kard_chain.testing.openai_server import FakeOpenAIServer
from tests.unit_tests.copy_task import copy_task

openai = pytest.importorskip("langchain_openai")

ENDINGS = ["So the answer is (A) red.", "So the answer is (B) blue.", "So the answer is (C) green.", "no answer here"]


def complete(prompt: str, i: int) -> str:
    """The student's i-th sample for a prompt: the same function serves in-process and behind the server."""
    h = int(hashlib.sha256(f"{prompt}|{i}".encode()).hexdigest(), 16)
    return f"Sample {i} reads the passages. {ENDINGS[h % 3 if h % 7 else 3]}"


class InProcess(BaseLLM):
    """The in-process student: ``n`` samples per prompt in one call, written by :func:`complete`."""

    @property
    def _llm_type(self) -> str:
        return "in-process"

    def _generate(self, prompts, stop=None, run_manager=None, n: int = 1, **kwargs: Any) -> LLMResult:
        return LLMResult(generations=[[Generation(text=complete(p, i)) for i in range(n)] for p in prompts])


@pytest.fixture(scope="module")
def world():
    _, test, passages = copy_task(n_train=4, n_test=12)
    return test, BM25Retriever.from_passages(passages)


def served(kind: str, server: FakeOpenAIServer, **kw):
    cls = openai.OpenAI if kind == "completions" else openai.ChatOpenAI
    extra = {"max_tokens": 64} if kind == "completions" else {}
    return cls(base_url=server.url, api_key="not-a-key", model="kard-student", temperature=0.7, **{**extra, **kw})


def answers(outs):
    return [(o["answer"], o["votes"], [r["text"] for r in o["rationales"]], [p["id"] for p in o["passages"]]) for o in outs]


@pytest.mark.parametrize("kind", ["completions", "chat"])
@pytest.mark.parametrize("faults", [{}, {"ignore_n": True}, {"rate_500": 0.3, "seed": 3}, {"rate_hang": 0.2, "hang_seconds": 3, "seed": 1}])
def test_a_served_student_answers_as_the_in_process_one(world, kind, faults):
    test, retriever = world
    expected = answers(build_kard_chain(retriever, InProcess(), k=2, n=5).batch(test))
    assert {a for a, *_ in expected} >= {"A", "B", "C"}  # the votes differ across questions
    with FakeOpenAIServer(complete=complete, **faults) as server:
        llm = served(kind, server, max_retries=6, timeout=1.0)
        chain = build_kard_chain(retriever, llm, k=2, n=5)
        assert answers(chain.batch(test)) == expected
        server.questions.clear()  # a server that ignores n writes the next sample each time a prompt comes back
        assert answers([chain.invoke(test[0])]) == expected[:1]
    if faults.get("ignore_n"):  # asked once for five, then once more per missing sample
        assert server.counts["200"] == 5 * (len(test) + 1)
    elif "rate_500" in faults:
        assert server.counts["500"] > 0
    elif "rate_hang" in faults:
        assert server.counts["hang"] > 0
    else:
        assert server.counts["200"] == len(test) + 1  # one request per question, n choices each


async def test_a_served_student_answers_async(world):
    test, retriever = world
    expected = answers([build_kard_chain(retriever, InProcess(), k=2, n=3).invoke(test[1])])
    with FakeOpenAIServer(complete=complete) as server:
        out = await build_kard_chain(retriever, served("chat", server), k=2, n=3).ainvoke(test[1])
    assert answers([out]) == expected


def test_a_failing_server_is_named_with_the_question(world):
    test, retriever = world
    with FakeOpenAIServer(complete=complete, status=503) as server:
        chain = build_kard_chain(retriever, served("completions", server, max_retries=0), k=2, n=3)
        with pytest.raises(StudentCallError) as err:
            chain.batch(test[:3])
    message = str(err.value)
    assert test[err.value.index].question in message and server.url in message and "'kard-student'" in message
    assert "not-a-key" not in message


class Short(BaseLLM):
    """A served model that stops answering after its first two samples of each prompt."""

    calls: dict = {}

    @property
    def _llm_type(self) -> str:
        return "short"

    def _generate(self, prompts, stop=None, run_manager=None, **kwargs: Any) -> LLMResult:
        out = []
        for p in prompts:
            self.calls[p] = self.calls.get(p, 0) + 1
            out.append([Generation(text=complete(p, self.calls[p] - 1))] if self.calls[p] <= 2 else [])
        return LLMResult(generations=out)


def test_a_vote_over_fewer_samples_than_asked_says_so(world):
    test, retriever = world
    out = build_kard_chain(retriever, Short(calls={}), k=2, n=5).invoke(test[0])
    assert len(out["rationales"]) == 2 and out["samples"] == {"asked": 5, "got": 2, "from": "Short"}
    assert "samples" not in build_kard_chain(retriever, InProcess(), k=2, n=5).invoke(test[0])


def test_sample_n_asks_a_model_without_n_once_per_sample():
    gens = sample_n(Short(calls={}), ["p1", "p2"], n=2)
    assert [[g.text for g in gs] for gs in gens] == [[complete(p, 0), complete(p, 1)] for p in ("p1", "p2")]


def test_load_kard_chain_serves_a_trained_folder_through_a_server(world, tmp_path):
    """The folder gives the settings (k, the passage budget counted in its tokenizer's tokens), the server the samples."""
    import json

    from kard_chain import load_kard_chain
    from kard_chain.student.format import StudentFormatter
    from kard_chain.student.settings import StudentSettings
    from kard_chain.testing.scratch_models import word_tokenizer

    test, _ = world
    _, _, passages = copy_task(n_train=4, n_test=12)
    BM25Retriever.build(passages, tmp_path / "index", show_progress=False)
    tok = word_tokenizer([p.text for p in passages] + [e.question for e in test])
    tok.save_pretrained(tmp_path / "student")
    settings = {"method": "kard", "k": 1, "max_passage_tokens": 6}
    (tmp_path / "student" / "kard_student.json").write_text(json.dumps(settings))
    formatter = StudentFormatter.from_settings(StudentSettings(**settings), tok)
    expected = answers(build_kard_chain(BM25Retriever.load(tmp_path / "index"), InProcess(), k=1, n=3, formatter=formatter).batch(test))
    with FakeOpenAIServer(complete=complete) as server:
        chain = load_kard_chain(tmp_path / "student", tmp_path / "index", served_by=served("completions", server), n=3)
        assert answers(chain.batch(test)) == expected
        sent = set(server.questions)
    index = BM25Retriever.load(tmp_path / "index")
    assert sent == {formatter.source(e.question, e.options, index.invoke(e.question, k=1)).text for e in test}  # k=1, 6 tokens
    with pytest.raises(TypeError, match="set them on the served model"):
        load_kard_chain(tmp_path / "student", tmp_path / "index", served_by=served("completions", server), temperature=0.3)
