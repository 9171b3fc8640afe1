"""Reading JSON Lines with line numbers, and writing files and folders atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kard_chain.errors import KardDataError


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL file.

    Raises ``KardDataError`` naming the file and line for a missing file, bad JSON or
    a line that is not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise KardDataError("file not found", path=path)
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise KardDataError(f"not UTF-8 text (byte {e.start + 1} of the line); re-encode the file as UTF-8",
                                    path=path, line=number) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise KardDataError(f"invalid JSON ({e.msg} at column {e.colno})", path=path, line=number) from None
            if not isinstance(record, dict):
                raise KardDataError(f"expected a JSON object, got {type(record).__name__}", path=path, line=number)
            yield number, record


def read_text(path: str | Path) -> str:
    """A UTF-8 text file, raising ``KardDataError`` that names the file when it is missing or not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise KardDataError("file not found", path=path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise KardDataError(f"not UTF-8 text (byte {e.start + 1}); re-encode the file as UTF-8", path=path) from None


def read_json(path: str | Path) -> Any:
    """Load a JSON file, raising ``KardDataError`` that names the file on failure."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise KardDataError(f"invalid JSON ({e.msg})", path=path, line=e.lineno) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_local_path(spec: str) -> bool:
    """Whether a model spec names a local folder (``./m``, ``/abs/m``, ``~/m``, ``a/b/c``, or one that exists) rather
    than a hub name (``google/flan-t5-base``)."""
    import re

    return (spec.startswith((".", "/", "~")) or Path(spec).expanduser().exists()
            or ("/" in spec and not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", spec)))


def share_like_other_files(folder: str | Path) -> None:
    """Give every file below ``folder`` the umask's permissions: safetensors writes its files private (0600), so a
    teammate could not load a shared student or reranker."""
    mode = 0o666 & ~_umask()
    for file in Path(folder).rglob("*"):
        if file.is_file() and not file.is_symlink() and file.stat().st_mode & 0o777 != mode:
            os.chmod(file, mode)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the file is as shared as any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_directory(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder in a temporary sibling and move it into place only on success.

    An interrupted build leaves ``path`` as it was (absent, or the previous version);
    the temporary sibling (``.name.tmp-*``) is removed on errors, and by the next build after a kill.
    """
    path = Path(path)
    if path.is_symlink():  # build what the link points to, so the link (kept) shows the new folder
        target = path.resolve()
        if not target.parent.is_dir():
            raise KardDataError(f"is a link to {target}, whose folder does not exist", path=path)
        path = target
    if path.exists() and not overwrite:
        if not path.is_dir() or any(path.iterdir()):
            raise FileExistsError(f"{path} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in [*path.parent.glob(f".{path.name}.tmp-*"), *path.parent.glob(f".{path.name}.old-*")]:
        shutil.rmtree(leftover, ignore_errors=True)  # from a build that was killed
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
