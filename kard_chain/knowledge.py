"""Knowledge-base readers: each yields :class:`Passage` records one at a time, so a
corpus larger than memory can stream straight into an index.

- :func:`read_passages_jsonl`: JSONL with ``id``, ``text`` and optional ``title``/``metadata``;
- :func:`read_strategyqa_paragraphs`: StrategyQA's ``strategyqa_train_paragraphs.json``;
- :func:`read_text_passages`: plain-text files split into overlapping word windows;
- :func:`read_line_passages`: one passage per line (OpenBookQA's ``openbook.txt``);
- :func:`load_passages`: picks one of the above from the path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from kard_chain.errors import KardDataError
from kard_chain.io import read_json, read_jsonl, read_text
from kard_chain.records import Passage

CorpusFormat = Literal["jsonl", "strategyqa", "text", "lines"]


def read_passages_jsonl(path: str | Path) -> Iterator[Passage]:
    """Stream passages from JSONL; keys other than id/title/text/metadata go to metadata."""
    for line, rec in read_jsonl(path):
        for field in ("id", "text"):
            if field not in rec:
                raise KardDataError("missing", path=path, line=line, field=field)
        if not isinstance(rec.get("metadata") or {}, dict):
            raise KardDataError(f"expected an object, got {type(rec['metadata']).__name__}", path=path, line=line, field="metadata")
        metadata = dict(rec.get("metadata") or {})
        metadata.update({k: v for k, v in rec.items() if k not in ("id", "title", "text", "metadata")})
        try:
            yield Passage(id=str(rec["id"]), title=rec.get("title") or "", text=rec["text"], metadata=metadata)
        except ValidationError as e:
            err = e.errors()[0]
            raise KardDataError(err["msg"], path=path, line=line, field=".".join(map(str, err["loc"]))) from None


def read_strategyqa_paragraphs(path: str | Path) -> Iterator[Passage]:
    """Passages from StrategyQA's paragraphs object keyed ``"{title}-{para_index}"``."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise KardDataError("expected a JSON object keyed by paragraph id", path=path)
    for key, rec in data.items():
        if not isinstance(rec, dict) or not isinstance(rec.get("content"), str):
            raise KardDataError("missing or not a string", path=path, key=key, field="content")
        yield Passage(
            id=key,
            title=str(rec.get("title", "")),
            text=rec["content"],
            metadata={k: rec[k] for k in ("section", "headers", "para_index") if k in rec},
        )


def chunk_words(text: str, words: int = 100, overlap: int = 20) -> list[str]:
    """Split ``text`` into windows of ``words`` words, consecutive windows sharing ``overlap``."""
    if words <= 0 or not 0 <= overlap < words:
        raise ValueError(f"need words > 0 and 0 <= overlap < words, got words={words}, overlap={overlap}")
    tokens = text.split()
    if not tokens:
        return []
    step = words - overlap
    starts = range(0, max(len(tokens) - overlap, 1), step)
    return [" ".join(tokens[s : s + words]) for s in starts]


def read_text_passages(paths: str | Path | Iterable[str | Path], words: int = 100, overlap: int = 20) -> Iterator[Passage]:
    """Passages from plain-text files (a file, a folder of ``*.txt`` or a list), in word windows.

    Ids are ``{file stem}-{window index}``; the title is the file stem.
    """
    for file in _text_files(paths):
        text = read_text(file)
        for i, chunk in enumerate(chunk_words(text, words, overlap)):
            yield Passage(id=f"{file.stem}-{i}", title=file.stem, text=chunk, metadata={"source": file.name, "window": i})


def read_line_passages(paths: str | Path | Iterable[str | Path]) -> Iterator[Passage]:
    """One passage per non-blank line of plain-text files (a file, a folder of ``*.txt`` or a list),
    a pair of enclosing double quotes removed (``"A bee is a pollinating animal"``).

    Ids are ``{file stem}-{line number}``; the title is the file stem.
    """
    for file in _text_files(paths):
        for number, line in enumerate(read_text(file).splitlines(), start=1):
            text = line.strip()
            if len(text) >= 2 and text[0] == text[-1] == '"':
                text = text[1:-1].strip()
            if text:
                yield Passage(id=f"{file.stem}-{number}", title=file.stem, text=text, metadata={"source": file.name, "line": number})


def _text_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(paths, (str, Path)):
        root = Path(paths)
        if root.is_dir():
            paths = sorted(root.rglob("*.txt"))
            if not paths:
                raise KardDataError("folder holds no .txt files", path=root)
        else:
            paths = [root]
    files = [Path(p) for p in paths]
    for file in files:  # every file checked before the first passage is yielded
        if not file.is_file():
            raise KardDataError("file not found", path=file)
    return files


def detect_format(path: str | Path) -> CorpusFormat:
    """``jsonl`` for .jsonl, ``strategyqa`` for .json, ``text`` for .txt files and folders (``lines`` is chosen by name only)."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".txt":
        return "text"
    if path.suffix == ".jsonl":
        return "jsonl"
    if path.suffix == ".json":
        return "strategyqa"
    raise KardDataError("cannot tell the corpus format from the name; pass format= (jsonl, strategyqa or text)", path=path)


def load_passages(
    path: str | Path, format: CorpusFormat | None = None, *, words: int = 100, overlap: int = 20
) -> Iterator[Passage]:
    """Stream the passages of a corpus file or folder, in the given or detected format."""
    if not Path(path).exists():
        raise KardDataError("file or folder not found", path=path)
    fmt = format or detect_format(path)
    if fmt == "jsonl":
        return read_passages_jsonl(path)
    if fmt == "strategyqa":
        return read_strategyqa_paragraphs(path)
    if fmt == "text":
        return read_text_passages(path, words=words, overlap=overlap)
    if fmt == "lines":
        return read_line_passages(path)
    raise KardDataError(f"unknown corpus format {fmt!r}; use jsonl, strategyqa, text or lines", path=path)
