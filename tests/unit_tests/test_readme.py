"""The Python examples of README and docs/ run as written (those that need no external data)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PAGES = README + "".join(page.read_text() for page in sorted((ROOT / "docs").glob("*.md")))


def runnable(text: str) -> list[str]:
    """Blocks that need data or trained models start with "# after:" or read the shared data: the others run."""
    return [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "../shared" not in b
            and not b.startswith("# after:") and "passages.jsonl" not in b]


BLOCKS = runnable(PAGES)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})


def test_readme_has_examples():
    assert any("BM25Retriever.from_texts" in b for b in runnable(README))
