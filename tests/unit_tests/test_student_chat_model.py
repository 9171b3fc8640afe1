"""A trained student folder as a LangChain chat model: LangChain's standard unit tests, and the same samples and
log-probabilities as the in-process student, streaming, async, batch, and a KARD chain voting over its samples."""

import atexit
import json
import shutil
import tempfile
from functools import cache
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_tests.unit_tests import ChatModelUnitTests

from kard_chain import BM25Retriever, build_kard_chain
from kard_chain.student.chat import StudentChatModel
from kard_chain.trained_chain import load_student_llm
from tests.unit_tests.copy_task import copy_task


@cache
def student_folder() -> Path:
    """A tiny untrained T5 student saved as a trained one is (weights, tokenizer, kard_student.json)."""
    from kard_chain.testing.scratch_models import scratch_t5, word_tokenizer

    folder = Path(tempfile.mkdtemp(prefix="student-chat-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    _, test, passages = copy_task(n_train=4, n_test=4)
    tok = word_tokenizer([p.text for p in passages] + [e.question for e in test] + ["question : knowledge : so the answer is"])
    scratch_t5(tok, d_model=32, layers=1, heads=2, dropout=0.0).save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "kard_student.json").write_text(json.dumps({"method": "kard", "k": 1, "model": "x", "output_dir": "y"}))
    return folder


class TestStudentChatModelStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[StudentChatModel]:
        return StudentChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"model": str(student_folder())}


PROMPT = "question: what colour is the zorb ?"


def test_n_samples_and_their_logprobs_are_the_in_process_students():
    chat = StudentChatModel(model=str(student_folder()), n=3, max_tokens=6, temperature=0.7)
    torch.manual_seed(0)
    gens = chat.generate([[SystemMessage("ignored: the student reads its input"), HumanMessage(PROMPT)]]).generations[0]
    llm = load_student_llm(student_folder(), max_new_tokens=6, temperature=0.7)
    torch.manual_seed(0)
    expected = llm.generate([PROMPT], n=3).generations[0]
    assert [g.message.content for g in gens] == [g.text for g in expected] and len(gens) == 3
    assert [g.message.response_metadata["logprob"] for g in gens] == pytest.approx([g.generation_info["logprob"] for g in expected])


def test_greedy_streaming_equals_invoke_and_batch_and_async_agree():
    chat = StudentChatModel(model=str(student_folder()), temperature=0, max_tokens=5)
    whole = chat.invoke(PROMPT).content
    assert "".join(chunk.content for chunk in chat.stream(PROMPT)) == whole
    assert [m.content for m in chat.batch([PROMPT, PROMPT])] == [whole, whole]
    import asyncio

    assert asyncio.run(chat.ainvoke(PROMPT)).content == whole
    streamed = StudentChatModel(model=str(student_folder()), temperature=0, max_tokens=5, streaming=True)
    assert streamed.invoke(PROMPT).content == whole
    with pytest.raises(ValueError, match="last user message"):
        chat.invoke([("system", "no question here")])
    with pytest.raises(ValueError, match="no chat template"):
        StudentChatModel(model=str(student_folder()), chat_template=True).invoke(PROMPT)


def test_a_kard_chain_votes_over_the_chat_models_samples():
    _, test, passages = copy_task(n_train=4, n_test=4)
    chat = StudentChatModel(model=str(student_folder()), n=4, max_tokens=4)
    out = build_kard_chain(BM25Retriever.from_passages(passages), chat, k=1, n=4).invoke(test[0])
    assert len(out["rationales"]) == 4 and "samples" not in out
    assert all(isinstance(r["logprob"], float) for r in out["rationales"])  # the tie-break has its scores


def test_a_decoder_student_reads_the_conversation_through_its_chat_template():
    from kard_chain.testing.scratch_models import scratch_decoder, word_tokenizer

    folder = Path(tempfile.mkdtemp(prefix="student-chat-decoder-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    tok = word_tokenizer(["question : what colour is the zorb ? system user assistant knowledge"])
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}<assistant>"
    scratch_decoder(tok, hidden=32, layers=1, heads=2).save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "kard_student.json").write_text(json.dumps({"method": "kard", "k": 1, "model": "x", "output_dir": "y"}))
    conversation = [SystemMessage("knowledge"), HumanMessage(PROMPT)]
    chat = StudentChatModel(model=str(folder), chat_template=True, temperature=0, max_tokens=4)
    rendered = "<system> knowledge <user> question: what colour is the zorb ? <assistant>"
    assert chat._prompt(conversation) == rendered
    plain = load_student_llm(folder, max_new_tokens=4, do_sample=False)
    assert chat.invoke(conversation).content == plain.invoke(rendered)
    assert StudentChatModel(model=str(folder), temperature=0, max_tokens=4).invoke(conversation).content == plain.invoke(PROMPT)
