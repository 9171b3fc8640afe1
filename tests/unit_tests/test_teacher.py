"""Teacher prompting, parsing and filtering with LangChain's fake chat models."""

import asyncio

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from kard_chain import Example, KardDataError
from kard_chain.answers import parse_answer
from kard_chain.teacher.chain import build_teacher_chain, render_question
from kard_chain.teacher.prompts import TEACHER_TASKS, load_teacher_prompts

YES_NO = Example(id="q1", question="Can goats make cheese?", answer="yes")
MC = Example(id="q2", question="Which drug causes dry cough?", options={"A": "Lisinopril", "B": "Losartan", "C": "Amlodipine", "D": "Metoprolol"}, answer="A")


class RecordingModel(FakeListChatModel):
    """Remembers the messages of each call."""

    seen: list = []

    def _call(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(messages)
        return super()._call(messages, stop=stop, run_manager=run_manager, **kwargs)


@pytest.mark.parametrize(
    ("text", "options", "expected"),
    [
        ("Goats give milk. So the answer is yes.", None, "yes"),
        ("The answer is No, they cannot.", None, "no"),
        ("Penguins cannot fly. So, no.", None, "no"),
        ("Final answer: true", None, "yes"),
        ("no conclusion here", None, None),
        ("ACE inhibitors raise bradykinin. So the answer is (A).", MC.options, "A"),
        ("So the answer is A) Lisinopril", MC.options, "A"),
        ("The answer is: losartan.", MC.options, "B"),
        ("Answer: C", MC.options, "C"),
        ("(A) is wrong because... So the answer is (D).", MC.options, "D"),
        ("I cannot decide.", MC.options, None),
    ],
)
def test_parse_answer(text, options, expected):
    assert parse_answer(text, options) == expected


def test_rationalize_prompt_shows_gold_and_demos_and_filters():
    model = RecordingModel(responses=["Goats make milk; milk makes cheese. So the answer is yes.", "So the answer is no.", "Hmm."])
    model.seen = []
    rationales = build_teacher_chain(model, "strategyqa", mode="rationalize", n=3).invoke(YES_NO)
    assert [r.kept for r in rationales] == [True, False, False]
    assert rationales[1].dropped == "answer no disagrees with gold yes"
    assert rationales[2].dropped == "no answer found" and rationales[2].answer is None
    assert [r.sample_index for r in rationales] == [0, 1, 2] and rationales[0].model == "fake-list-chat-model"
    assert len(model.seen) == 3  # no n parameter: three calls
    messages = model.seen[0]
    demos = load_teacher_prompts("strategyqa")["default"].examples
    assert isinstance(messages[0], SystemMessage) and "correct answer" in messages[0].content
    assert len(messages) == 2 + 2 * len(demos)
    assert isinstance(messages[2], AIMessage) and messages[2].content == demos[0].rationale
    assert isinstance(messages[-1], HumanMessage)
    assert messages[-1].content == "Question: Can goats make cheese?\nCorrect answer: yes"


def test_solve_mode_hides_the_answer_and_checks_it():
    model = RecordingModel(responses=["Lisinopril is an ACE inhibitor. So the answer is (A).", "So the answer is (B)."])
    model.seen = []
    rationales = build_teacher_chain(model, "medqa", mode="solve", n=2).invoke(MC.model_dump())
    assert [r.answer for r in rationales] == ["A", "B"] and [r.kept for r in rationales] == [True, False]
    last = model.seen[0][-1].content
    assert "Correct answer" not in last
    assert last == render_question(MC.question, MC.options) and "(B) Losartan" in last


def test_prompt_is_a_configurable_alternative(tmp_path):
    (tmp_path / "strategyqa").mkdir()
    (tmp_path / "strategyqa" / "mine.toml").write_text(
        'description = "x"\n[instructions]\nrationalize = "MY INSTRUCTION {not a variable}"\nsolve = "s"\n'
    )
    model = RecordingModel(responses=["So the answer is yes."])
    model.seen = []
    chain = build_teacher_chain(model, "strategyqa", n=1, prompts_dir=tmp_path)
    chain.with_config(configurable={"prompt": "mine"}).invoke(YES_NO)
    assert model.seen[-1][0].content == "MY INSTRUCTION {not a variable}" and len(model.seen[-1]) == 2
    chain.with_config(configurable={"prompt": "terse"}).invoke(YES_NO)
    assert model.seen[-1][0].content.startswith("Given a yes/no question")
    chain.invoke(YES_NO)
    assert model.seen[-1][0].content.startswith("You are a careful tutor")


def test_one_request_for_n_samples_when_the_model_has_n():
    class NModel(FakeListChatModel):
        n: int = 1
        requests: int = 0

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            from langchain_core.outputs import ChatGeneration, ChatResult

            self.requests += 1
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=f"So the answer is {a}.")) for a in ("yes", "no", "yes", "yes")[: kwargs["n"]]])

    model = NModel(responses=["unused"])
    rationales = asyncio.run(build_teacher_chain(model, "generic", n=4).ainvoke(YES_NO))
    assert model.requests == 1 and [r.answer for r in rationales] == ["yes", "no", "yes", "yes"]


def test_every_task_has_both_modes_and_valid_demos():
    for task in TEACHER_TASKS:
        variants = load_teacher_prompts(task)
        assert "default" in variants
        for prompt in variants.values():
            for demo in prompt.examples:
                assert parse_answer(demo.rationale, demo.options) == demo.answer


def test_bad_prompt_files_are_named(tmp_path):
    (tmp_path / "bad.toml").write_text('[instructions]\nrationalize = "r"\nsolve = "s"\n[[examples]]\nquestion = "q"\nanswer = "maybe"\nrationale = "r"\n')
    with pytest.raises(KardDataError, match=r"bad.toml: field 'examples.0'.*yes or no"):
        load_teacher_prompts("generic", tmp_path)
    with pytest.raises(KardDataError, match="unknown teacher task"):
        load_teacher_prompts("squad")
    with pytest.raises(ValueError, match="no gold answer"):
        build_teacher_chain(FakeListChatModel(responses=["x"]), "generic", n=1).invoke(Example(id="u", question="?"))
