"""A local Hugging Face causal LM as the teacher: a tiny random Llama, no download."""

import json

import pytest
from langchain_core.messages import HumanMessage

from kard_chain import Example
from kard_chain.cli import main
from kard_chain.teacher.cache import read_rationales
from kard_chain.teacher.chain import build_teacher_chain

pytest.importorskip("transformers")

CHAT_TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    words = "question answer is yes no so the correct options goats cheese milk can make a b c d".split()
    tok.train_from_iterator([" ".join(words)] * 3, trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "</s>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("tiny-lm")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_samples_n_replies_in_one_call(tiny_lm):
    from kard_chain.teacher.huggingface import HuggingFaceChatModel

    model = HuggingFaceChatModel.from_pretrained(str(tiny_lm), max_new_tokens=6)
    result = model.generate([[HumanMessage(content="can goats make cheese")]], n=3)
    assert len(result.generations[0]) == 3
    assert result.generations[0][0].message.usage_metadata["output_tokens"] > 0
    rationales = build_teacher_chain(model, "strategyqa", n=2).invoke(Example(id="x", question="Can goats make cheese?", answer="yes"))
    assert len(rationales) == 2 and all(r.model == str(tiny_lm) for r in rationales)


def test_kard_teach_with_a_local_model(tiny_lm, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Can goats make cheese {i}?", "answer": "yes"}) + "\n" for i in range(3)))
    out = tmp_path / "r.jsonl"
    args = ["teach", "--dataset", "jsonl", "--data-dir", str(data), "--teacher", f"hf:{tiny_lm}", "--n", "2", "--max-tokens", "5", "--out", str(out)]
    assert main(args) == 0
    records = read_rationales(out)
    assert sorted(records) == ["q0", "q1", "q2"]
    assert all(len(r.rationales) == 2 and r.input_tokens > 0 for r in records.values())
