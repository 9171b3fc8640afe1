"""Progress that suits where it goes: a live bar on a terminal; on a pipe or a file (a log, CI, a job
scheduler) a plain line every 10% or every ``interval`` seconds, with no carriage returns; nothing
at all when quiet (``KARD_QUIET=1``, which ``--quiet`` sets).

    for passage in progress(passages, desc="indexing", unit=" passages"): ...
    bar = progress(total=len(todo), desc="teacher", unit=" ex"); bar.update(1); bar.close()
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

QUIET_ENV = "KARD_QUIET"


def set_quiet(quiet: bool = True) -> None:
    """Turn progress output off (or back on) for this process and the processes it starts."""
    os.environ[QUIET_ENV] = "1" if quiet else ""


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = " it",
             initial: int = 0, disable: bool = False, interval: float = 10.0) -> Any:
    """A tqdm bar on a terminal, :class:`PlainProgress` elsewhere; both disabled when quiet or ``disable``."""
    off = disable or bool(os.environ.get(QUIET_ENV))
    if not off and sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=off, interval=interval)


class PlainProgress:
    """The bar's interface (``update``, ``set_postfix``, ``write``, ``close``, iteration) as plain log lines."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = " it",
                 initial: int = 0, disable: bool = False, interval: float = 10.0, file: TextIO | None = None) -> None:
        self.iterable, self.desc, self.unit, self.disable, self.interval = iterable, desc, unit, disable, interval
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n = self.start_n = initial
        self.file = file or sys.stderr
        self.postfix: dict[str, Any] = {}
        self.started = self.last = time.monotonic()
        self.tenth = self._tenth()
        self.closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tenth(self) -> int:
        return 10 * self.n // self.total if self.total else 0

    def line(self) -> str:
        """The current state as one line."""
        elapsed = time.monotonic() - self.started
        done = f"{self.n}/{self.total}{self.unit} ({100 * self.n / self.total:.0f}%)" if self.total else f"{self.n}{self.unit}"
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        speed = f"{1 / rate:.1f} s/{self.unit.strip()}" if 0 < rate < 1 else f"{rate:.1f}{self.unit}/s"
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        return f"{self.desc}: {done}, {elapsed:.0f} s, {speed}{extra}"

    def update(self, n: int = 1) -> None:
        self.n += n
        now, tenth = time.monotonic(), self._tenth()
        if tenth > self.tenth or now - self.last >= self.interval:
            self.tenth, self.last = tenth, now
            self.write(self.line())

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values

    def write(self, text: str) -> None:
        if not self.disable:
            print(text, file=self.file, flush=True)

    def close(self) -> None:
        if not self.closed and self.tenth < 10 and self.n > self.start_n:
            self.write(self.line())
        self.closed = True
