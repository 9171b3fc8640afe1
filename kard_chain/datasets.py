"""Dataset loaders, one registry keyed by name.

    >>> from kard_chain.datasets import load_dataset
    >>> examples = load_dataset("strategyqa", "../shared/data/strategyqa", split="train")  # doctest: +SKIP

``path`` is the dataset's folder (the split's file is found by its usual name) or the
file itself. Every malformed record stops the load with a ``KardDataError`` naming the
file, the line (or record) and the field.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kard_chain.errors import KardDataError
from kard_chain.io import read_json, read_jsonl
from kard_chain.records import Example

Loader = Callable[..., list[Example]]
_REGISTRY: dict[str, Loader] = {}


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator that registers a loader ``fn(path, split="train", **options)`` under ``name``."""

    def wrap(fn: Loader) -> Loader:
        _REGISTRY[name] = fn
        return fn

    return wrap


DATA_FOLDERS = {"strategyqa": "strategyqa", "medqa": "medqa", "obqa": "openbookqa"}
"""The folder each dataset has under a data root."""


def default_data_dir(name: str) -> Path:
    """Where a dataset is looked for when no folder is given: ``$KARD_DATA_DIR/<folder>``, else ``data/<folder>``."""
    return Path(os.environ.get("KARD_DATA_DIR", "data")) / DATA_FOLDERS.get(name, name)


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_REGISTRY)


def load_dataset(name: str, path: str | Path, split: str = "train", **options: Any) -> list[Example]:
    """Load split ``split`` of dataset ``name`` from ``path`` (a folder or the split's file)."""
    if name not in _REGISTRY:
        raise KardDataError(f"unknown dataset {name!r}; known datasets: {', '.join(dataset_names())}")
    examples = _REGISTRY[name](path, split=split, **options)
    seen: dict[str, int] = {}
    for i, ex in enumerate(examples):
        if ex.id in seen:
            raise KardDataError(f"duplicate example id {ex.id!r} (records {seen[ex.id]} and {i})", path=path, field="id")
        seen[ex.id] = i
    if not examples:
        raise KardDataError(f"no examples in split {split!r}", path=path)
    return examples


def _split_file(path: str | Path, candidates: list[str]) -> Path:
    """``path`` itself if it is a file, else the first of ``candidates`` inside it."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in candidates:
            if (path / name).is_file():
                return path / name
        raise KardDataError(f"no split file found; looked for {', '.join(candidates)}", path=path)
    raise KardDataError("file or folder not found", path=path)


def _get(record: Mapping[str, Any], dotted: str, *, path: Path, line: int | None = None, key: str | None = None) -> Any:
    """Follow a dotted field path (``"question.stem"``) through nested objects."""
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KardDataError("missing", path=path, line=line, key=key, field=dotted)
        value = value[part]
    return value


def _make(fields: dict[str, Any], *, path: Path, line: int | None = None, key: str | None = None) -> Example:
    try:
        return Example(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise KardDataError(err["msg"], path=path, line=line, key=key, field=field) from None


def _yes_no(value: Any, *, path: Path, line: int | None = None, key: str | None = None, field: str = "answer") -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and value.strip().lower() in {"yes", "no", "true", "false"}:
        return "yes" if value.strip().lower() in {"yes", "true"} else "no"
    raise KardDataError(f"expected a boolean or yes/no, got {value!r}", path=path, line=line, key=key, field=field)


@register_dataset("strategyqa")
def load_strategyqa(path: str | Path, split: str = "train") -> list[Example]:
    """The official StrategyQA JSON: yes/no answers, ``facts`` as the reference rationale,
    gold evidence paragraph ids from all annotators; ``term``, ``description``, ``facts``,
    ``decomposition`` and the raw ``evidence`` kept in metadata."""
    file = _split_file(path, [f"strategyqa_{split}.json"])
    data = read_json(file)
    if not isinstance(data, list):
        raise KardDataError("expected a JSON list of questions", path=file)
    examples = []
    for i, rec in enumerate(data):
        key = f"record {i}"
        if not isinstance(rec, dict):
            raise KardDataError("expected a JSON object", path=file, key=key)
        qid = _get(rec, "qid", path=file, key=key)
        key = f"record {i}, qid {qid}"
        facts = rec.get("facts")
        if facts is not None and not (isinstance(facts, list) and all(isinstance(f, str) for f in facts)):
            raise KardDataError(f"expected a list of strings, got {type(facts).__name__}", path=file, key=key, field="facts")
        evidence = rec.get("evidence")
        evidence_ids = _strategyqa_evidence_ids(evidence, path=file, key=key) if evidence is not None else None
        examples.append(
            _make(
                dict(
                    id=qid,
                    question=_get(rec, "question", path=file, key=key),
                    answer=_yes_no(rec["answer"], path=file, key=key) if "answer" in rec else None,
                    reference_rationale=" ".join(facts) if facts else None,
                    evidence_ids=evidence_ids,
                    metadata={k: rec[k] for k in ("term", "description", "facts", "decomposition", "evidence") if k in rec},
                ),
                path=file,
                key=key,
            )
        )
    return examples


def _strategyqa_evidence_ids(evidence: Any, *, path: Path, key: str) -> list[str]:
    """Paragraph ids in first-seen order over annotators -> steps -> items."""
    ids: dict[str, None] = {}
    try:
        for annotator in evidence:
            for step in annotator:
                for item in step:
                    if isinstance(item, list):
                        ids.update(dict.fromkeys(str(x) for x in item))
                    elif item not in ("operation", "no_evidence"):
                        raise TypeError(item)
    except TypeError as e:
        raise KardDataError(f"unexpected evidence item {e.args[0]!r}", path=path, key=key, field="evidence") from None
    return list(ids)


@register_dataset("medqa")
def load_medqa(path: str | Path, split: str = "train") -> list[Example]:
    """MedQA-USMLE JSONL (4- or 5-option): ``question``, ``options`` {letter: text},
    ``answer_idx``; ids are ``medqa-{split}-{line}``; ``meta_info`` kept in metadata."""
    file = _split_file(path, [f"phrases_no_exclude_{split}.jsonl", f"{split}.jsonl"])
    examples = []
    for line, rec in read_jsonl(file):
        options = _get(rec, "options", path=file, line=line)
        if not isinstance(options, dict) or len(options) not in (4, 5):
            raise KardDataError("expected an object of 4 or 5 options", path=file, line=line, field="options")
        examples.append(
            _make(
                dict(
                    id=str(rec.get("id", f"medqa-{split}-{line}")),
                    question=_get(rec, "question", path=file, line=line),
                    options=options,
                    answer=_get(rec, "answer_idx", path=file, line=line),
                    metadata={k: rec[k] for k in ("meta_info",) if k in rec},
                ),
                path=file,
                line=line,
            )
        )
    return examples


@register_dataset("obqa")
def load_obqa(path: str | Path, split: str = "train") -> list[Example]:
    """OpenBookQA JSONL: ``question.stem``, ``question.choices``, ``answerKey``; reads
    ``{split}_complete.jsonl`` where present so that ``fact1`` becomes the reference rationale."""
    file = _split_file(path, [f"{split}_complete.jsonl", f"{split}.jsonl"])
    examples = []
    for line, rec in read_jsonl(file):
        choices = _get(rec, "question.choices", path=file, line=line)
        try:
            options = {c["label"]: c["text"] for c in choices}
        except (TypeError, KeyError):
            raise KardDataError("expected a list of {label, text}", path=file, line=line, field="question.choices") from None
        examples.append(
            _make(
                dict(
                    id=str(_get(rec, "id", path=file, line=line)),
                    question=_get(rec, "question.stem", path=file, line=line),
                    options=options,
                    answer=rec.get("answerKey"),
                    reference_rationale=rec.get("fact1"),
                ),
                path=file,
                line=line,
            )
        )
    return examples


@register_dataset("jsonl")
def load_jsonl_dataset(path: str | Path, split: str = "train", fields: Mapping[str, str] | None = None) -> list[Example]:
    """Any JSONL file, with ``fields`` mapping Example fields to (dotted) record keys.

    ``fields={"question": "q.text", "answer": "label"}``; unmapped fields use their own
    name; all but ``question`` may be absent from a record. ``options`` may be an object keyed by
    letter or a list of strings (lettered A, B, ...); a boolean answer becomes yes/no.
    Missing ``id``s become ``{split}-{line}``.
    """
    mapping = {name: name for name in ("id", "question", "options", "answer", "reference_rationale", "evidence_ids")}
    unknown = set(fields or {}) - set(mapping)
    if unknown:
        raise KardDataError(f"unknown target fields {sorted(unknown)}; valid: {sorted(mapping)}")
    mapping.update(fields or {})
    file = _split_file(path, [f"{split}.jsonl"])
    examples = []
    for line, rec in read_jsonl(file):
        values: dict[str, Any] = {}
        for target, source in mapping.items():
            try:
                values[target] = _get(rec, source, path=file, line=line)
            except KardDataError:
                if target == "question":
                    raise
        options = values.get("options")
        if isinstance(options, list):
            values["options"] = {chr(ord("A") + i): str(o) for i, o in enumerate(options)}
        if isinstance(values.get("answer"), bool):
            values["answer"] = _yes_no(values["answer"], path=file, line=line, field=mapping["answer"])
        values["id"] = str(values.get("id", f"{split}-{line}"))
        examples.append(_make(values, path=file, line=line))
    return examples
