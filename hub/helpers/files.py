"""File helpers for plugins: safe file names and atomic writes (a reader never sees half a file)."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(*parts: str) -> str:
    """A file name from parts (``ghg-2026-tenant_a``): unsafe characters become ``_``."""
    return "-".join(_SAFE.sub("_", p) for p in parts if p)


def atomic_write(path: Path, data: bytes | str, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file renamed over it (a reader never sees half a file).

    ``fsync`` flushes the file to disk before the rename, for files another system picks up
    (an ERP's inbox) and that must survive a power cut once written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_written(path: Path) -> tuple[str | None, str | None]:
    """``(text, None)`` for a file a writer wrote, or ``(None, problem)`` naming the file.

    A problem: the file is missing or unreadable, not UTF-8, or does not end with a newline
    (every built-in writer ends its files with one, so a file without it was cut short).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, f"{path.name}: cannot be read ({exc.strerror}); write the disclosure again"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"{path.name}: not UTF-8 at byte {exc.start} (damaged); write the disclosure again"
    if text and not text.endswith("\n"):
        return None, f"{path.name}: ends inside a line (cut short?); write the disclosure again"
    return text, None


def first_difference(actual: str, expected: str) -> str:
    """Where two texts first differ: ``line N``, or ``line N (missing)`` / ``(extra)`` when one is shorter."""
    a, e = actual.splitlines(), expected.splitlines()
    for n, (x, y) in enumerate(zip(a, e, strict=False), start=1):
        if x != y:
            return f"line {n}"
    return f"line {min(len(a), len(e)) + 1} ({'missing' if len(a) < len(e) else 'extra'})"


def check_written(paths: Sequence[Path], read: Callable[[Path, str], tuple[T | None, list[str]]],
                  companions: Callable[[Path, T], list[tuple[Path, str | None]]]) -> list[str]:
    """The problems of the files a disclosure writer wrote: one rule for every writer whose
    JSON document is the source of truth and whose other files (CSV tables) restate it.

    Each path is read with :func:`read_written`; each ``.json`` one is then parsed by
    ``read(path, text)`` into ``(document or None, problems)``; ``companions(path,
    document)`` lists the files that must say what the document says, with their expected
    text (None: only that the file reads). A companion that differs is reported at its first
    differing line. Each problem is listed once, in order.
    """
    problems: list[str] = []
    for p in paths:
        text, problem = read_written(p)
        if problem:
            problems.append(problem)
            continue
        if p.suffix != ".json":
            continue
        document, found = read(p, text or "")
        problems += found
        if document is None:
            continue
        for path, want in companions(p, document):
            got, problem = read_written(path)
            if problem:
                problems.append(problem)
            elif want is not None and got != want:
                problems.append(f"{path.name}: {first_difference(got or '', want)} differs from {p.name} "
                                "(cut or edited); write the disclosure again")
    return list(dict.fromkeys(problems))
