"""File helpers for plugins: safe file names and atomic writes (a reader never sees half a file)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

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
