"""What made an artefact: every resumable or reusable output carries a manifest, and a rerun that
would mix two runs' work stops before doing anything.

A manifest is the artefact's kind (``teacher-cache``, ``bm25-index``, ``student-run``...) and the
settings that change its content, the identity of its inputs among them (:func:`identity`: a
file's path and content hash; a folder's path and the hashes of its top-level files; a hub name
as itself). A folder keeps it in ``kard_manifest.json``, a file beside it in
``<name>.manifest.json``::

    resume = prepare_output(Path("cache.jsonl"), Manifest("teacher-cache", {"n": 4, ...}), overwrite=False)

A rerun with the same manifest resumes; one whose manifest differs is refused
(:class:`ManifestMismatch`, a :class:`~kard_chain.errors.KardDataError`) with each difference
and what to do, or, with ``overwrite``, the old artefact is removed and the run starts over.
``overwrite`` never removes what kard did not make (a folder without our manifest), another
kind of artefact, or the working directory or one of its parents.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kard_chain.errors import KardDataError
from kard_chain.io import atomic_write_text

MANIFEST = "kard_manifest.json"
"""The manifest's name inside a folder artefact."""
NOT_CONTENT = {MANIFEST, "retriever.json"}
"""Files of a folder that say how it is used, not what it holds: left out of its identity."""


class ManifestMismatch(KardDataError):
    """An output holds another run's work (or is not ours): the run stops before doing anything."""


HASHED_BYTES = 64 * 2**20
"""Files up to this size are identified by their content; larger ones by size and modification time."""


def file_identity(p: Path) -> dict[str, Any]:
    st = p.stat()
    if st.st_size <= HASHED_BYTES:
        h = hashlib.sha256()
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return {"size": st.st_size, "sha256": h.hexdigest()[:16]}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def identity(path: str | Path | None) -> dict[str, Any] | None:
    """What identifies an input: its path and content (a hash; size and modification time for files over
    64 MiB); a folder: its path and that of each top-level file; a hub name: itself."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        return {"name": str(path)}
    if p.is_file():
        return {"path": str(p.resolve()), **file_identity(p)}
    files = {f.name: file_identity(f) for f in sorted(p.iterdir())
             if f.is_file() and not f.name.startswith(".") and f.name not in NOT_CONTENT}
    return {"path": str(p.resolve()), "files": digest(files)}


def digest(value: Any) -> str:
    """A short content hash of any JSON-able value (a prompt's text, a list of pairs)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def manifest_file(artefact: Path, folder: bool) -> Path:
    """Where an artefact's manifest lives: inside a folder, beside a file."""
    return artefact / MANIFEST if folder else artefact.with_name(artefact.name + ".manifest.json")


@dataclass
class Manifest:
    """An artefact's kind and the settings (and input identities) that made it."""

    kind: str
    settings: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """The manifest as stored (settings through JSON, so that paths and tuples compare as they read back)."""
        return {"kind": self.kind, "settings": json.loads(json.dumps(self.settings, sort_keys=True, default=str))}

    def save(self, artefact: Path, folder: bool) -> None:
        """Write the manifest of ``artefact`` (a folder, or a file) atomically."""
        atomic_write_text(manifest_file(artefact, folder), json.dumps(self.as_json(), indent=2, sort_keys=True))

    @classmethod
    def load(cls, artefact: Path, folder: bool) -> Manifest | None:
        """The manifest of ``artefact`` (a folder, or a file), or ``None`` where it has none."""
        file = manifest_file(artefact, folder)
        if not file.is_file():
            return None
        try:
            data = json.loads(file.read_text())
            return cls(kind=data["kind"], settings=data["settings"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise KardDataError(f"unreadable manifest ({e}); move the artefact away or remove the manifest", path=file) from None


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` for every setting that differs (nested settings by dotted key)."""
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: {json.dumps(a)} -> {json.dumps(b)}")
    return lines


def _is_workdir_or_parent(path: Path) -> bool:
    here, target = Path.cwd().resolve(), path.resolve()
    return target == here or target in here.parents


def _empty(path: Path, folder: bool) -> bool:
    """Nothing to resume: absent, or (a failed start) a folder holding only its manifest, or an empty file."""
    if folder:
        return not path.exists() or (path.is_dir() and all(p.name == MANIFEST or p.name.startswith(".") for p in path.iterdir()))
    return not path.exists() or (path.is_file() and path.stat().st_size == 0)


_HELD: dict[Path, tuple[int, int]] = {}
"""Lock files this process holds: resolved path -> (file descriptor, depth)."""


def lock_file(artefact: str | Path) -> Path:
    """The lock beside an artefact (``.{name}.lock``): it outlives replacing the artefact, so a writer's lock holds."""
    artefact = Path(artefact)
    return artefact.parent / f".{artefact.name}.lock"


@contextmanager
def output_lock(artefact: str | Path) -> Iterator[None]:
    """Hold the artefact's writer lock (re-entrant within a process): taken before its manifest is read, kept until
    the last record is written, so a second writer, ``--overwrite`` included, is refused instead of mixing or unlinking
    the first one's work."""
    lock = lock_file(artefact)
    lock.parent.mkdir(parents=True, exist_ok=True)
    key = lock.resolve()
    if key in _HELD:
        fd, depth = _HELD[key]
        _HELD[key] = (fd, depth + 1)
    else:
        _HELD[key] = (_acquire(lock, Path(artefact)), 1)
    try:
        yield
    finally:
        fd, depth = _HELD[key]
        if depth > 1:
            _HELD[key] = (fd, depth - 1)
        else:
            del _HELD[key]
            lock.unlink(missing_ok=True)  # removed while still held: nothing is left beside the artefact
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _acquire(lock: Path, artefact: Path) -> int:
    """Lock ``lock`` (created if absent), refusing at once if another process holds it. A lock file removed by its
    holder between our open and our lock is not the lock any more: checked by inode, and taken anew."""
    for _ in range(5):
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise KardDataError("another process is writing this output (the same command running twice?); wait for it to "
                                "finish or choose another output", path=artefact) from None
        try:
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # we locked a file its holder had just removed: try the current one
    raise KardDataError("could not take the output's lock (it keeps changing); try again", path=artefact)


def check_output(artefact: str | Path, manifest: Manifest, *, folder: bool, overwrite: bool = False,
                 option: str = "--overwrite") -> str:
    """What a run may do with ``artefact`` (a ``folder``, or a file), without touching it: ``"fresh"`` (nothing
    there), ``"resume"`` (the same manifest) or ``"replace"`` (another manifest, and ``overwrite``).

    Refused (:class:`ManifestMismatch`): another manifest without ``overwrite``, another kind of
    artefact, anything kard did not make, and overwriting the working directory or a parent of it.
    """
    artefact = Path(artefact)
    if overwrite and _is_workdir_or_parent(artefact):
        raise ManifestMismatch("refusing to overwrite the working directory or one of its parents; choose another output",
                               path=artefact)
    if _empty(artefact, folder):
        return "fresh"
    old = Manifest.load(artefact, folder)
    if old is None:
        raise ManifestMismatch(f"exists and was not made by kard-chain (no {manifest_file(artefact, folder).name}); choose "
                               f"another output: {option} replaces only kard's own artefacts", path=artefact)
    if old.kind != manifest.kind:
        raise ManifestMismatch(f"holds a {old.kind}, not a {manifest.kind}; choose another output", path=artefact)
    changed = differences(old.settings, manifest.as_json()["settings"])
    if not changed:
        return "resume"
    if not overwrite:
        raise ManifestMismatch(f"holds the work of another {manifest.kind} run; it differs in " + "; ".join(changed)
                               + f". Choose another output, or pass {option} to start over", path=artefact)
    return "replace"


def apply_output(artefact: str | Path, manifest: Manifest, action: str, *, folder: bool, write: bool = True) -> bool:
    """Carry out :func:`check_output`'s ``action`` (remove a replaced artefact, write the manifest); returns whether to resume."""
    artefact = Path(artefact)
    if action == "resume":
        return True
    if action == "replace":
        remove_artefact(artefact, folder)
    if write:
        manifest.save(artefact, folder)
    return False


def prepare_output(artefact: str | Path, manifest: Manifest, *, folder: bool, overwrite: bool = False, write: bool = True,
                   option: str = "--overwrite") -> bool:
    """Check ``artefact`` against ``manifest`` before any work and act on it; returns whether there is earlier
    work to resume. ``write=False`` leaves the manifest to an artefact built elsewhere and moved into place."""
    with output_lock(artefact):  # hold it around the whole write too (``with output_lock(out): prepare_output(...); ...``)
        action = check_output(artefact, manifest, folder=folder, overwrite=overwrite, option=option)
        return apply_output(artefact, manifest, action, folder=folder, write=write)


def ours_to_compare(artefact: Path, kind: str) -> bool:
    """Whether ``artefact`` is a file artefact of ``kind`` that kard made (so its records can be checked against their inputs)."""
    old = Manifest.load(artefact, folder=False)
    return old is not None and old.kind == kind and artefact.is_file()


def replace_stale(artefact: Path, stale: list[str], overwrite: bool, why: str) -> None:
    """Records of a file artefact of kard's (``stale``: their ids) that no longer match their inputs: refused, or the
    artefact removed with ``overwrite`` so the run starts over; resuming would mix two inputs' work."""
    if not stale:
        return
    if not overwrite:
        raise ManifestMismatch(f"{len(stale)} of its records {why} (e.g. {stale[0]}). Choose another output, or pass "
                               "--overwrite to start over", path=artefact)
    remove_artefact(artefact, folder=False)


def remove_artefact(artefact: Path, folder: bool) -> None:
    """Remove a kard artefact and its manifest (a folder whole, a file with its manifest)."""
    if folder:
        shutil.rmtree(artefact, ignore_errors=True)
        return
    artefact.unlink(missing_ok=True)
    manifest_file(artefact, folder).unlink(missing_ok=True)
