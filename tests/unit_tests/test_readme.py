"""The README's Python examples run as written (those that need no external data)."""

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
# blocks that need data or trained models start with "# after:" or read the shared data
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", README, flags=re.S) if "../shared" not in b and not b.startswith("# after:")
          and "passages.jsonl" not in b]


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})


def test_readme_has_examples():
    assert any("BM25Retriever.from_texts" in b for b in BLOCKS)
