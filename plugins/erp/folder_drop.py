"""Folder-drop transport (``erp.folder``): write each document into a folder an ERP watches.

Each file gets the permissions ``file_mode`` names (default ``"0640"``: the owner reads
and writes, the group, e.g. an ERP import job's, reads). The document is written to a hidden temporary file in the target folder, flushed to disk,
then renamed over the final name with ``os.replace`` (atomic on one file system) and the
folder itself is fsynced, so a watcher never sees a half-written file. A send whose
deadline has passed before the rename is given up (the temporary file removed) and
retried later; a file system that blocks inside one write cannot be interrupted, which the
outbox relay covers by keeping the row's lease while the send runs over.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from kwhub.core.adapters import (
    AdapterConfig,
    CheckResult,
    FailureKind,
    InvoiceTransport,
    OutgoingDocument,
)
from kwhub.hub.helpers.transports import (
    DEFAULT_FILE_MODE,
    RetrySettings,
    TransportResult,
    safe_filename,
)
from kwhub.plugins.erp.file_permissions import FileModeConfig

# Failures that may go away on their own; anything else needs a person (permissions, paths).
RETRYABLE_ERRNO = frozenset({errno.ENOSPC, errno.EIO, errno.EAGAIN, errno.EBUSY, errno.EDQUOT, errno.EINTR})


class FolderConfig(FileModeConfig):
    """Settings of one folder-drop instance."""

    folder: str  # relative paths are taken from the directory of kwhub.toml
    create: bool = True  # create the folder on first send when missing
    fsync: bool = True
    file_mode: str | int = DEFAULT_FILE_MODE  # permissions of each written file, e.g. "0640" (group can read)
    retry: RetrySettings = Field(default_factory=lambda: RetrySettings())



def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FolderDropTransport(InvoiceTransport):
    """Drop rendered invoices into a folder, atomically."""

    type_id: ClassVar[str] = "erp.folder"
    title: ClassVar[str] = "Folder drop"
    Config: ClassVar[type[AdapterConfig]] = FolderConfig

    @property
    def folder(self) -> Path:
        """The target folder, absolute."""
        p = Path(self.config.folder).expanduser()  # type: ignore[attr-defined]
        return p if p.is_absolute() else (self.context.work_dir / p)

    def send(self, doc: OutgoingDocument) -> TransportResult:
        """Write ``doc`` atomically; an identical file already there counts as a duplicate."""
        cfg: FolderConfig = self.config  # type: ignore[assignment]
        folder = self.folder
        try:
            name = safe_filename(doc.filename)
        except ValueError as exc:
            return TransportResult(False, None, str(exc), retryable=False)
        target = folder / name
        tmp: str | None = None
        late = TransportResult(False, None, f"timeout: the send deadline passed before {target} was written",
                               retryable=True)
        budget = cfg.retry.send_deadline_s
        try:
            if doc.time_left(budget) <= 0:
                return late
            if cfg.create:
                folder.mkdir(parents=True, exist_ok=True)
            if target.is_file() and target.stat().st_size == len(doc.body) and target.read_bytes() == doc.body:
                return TransportResult(True, None, f"duplicate: {target} already holds this document", duplicate=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
            os.fchmod(fd, cfg.mode)  # mkstemp makes 0600; the receiving group reads with file_mode
            with os.fdopen(fd, "wb") as fh:
                fh.write(doc.body)
                fh.flush()
                if cfg.fsync:
                    os.fsync(fh.fileno())
            if doc.time_left(budget) <= 0:
                return late  # the finally block removes the temporary file
            os.replace(tmp, target)
            tmp = None
            if cfg.fsync:
                _fsync_dir(folder)
        except OSError as exc:
            retryable = exc.errno in RETRYABLE_ERRNO
            return TransportResult(False, None, f"cannot write {target}: {exc.strerror or exc}", retryable=retryable)
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        return TransportResult(True, None, f"written to {target}")

    def check(self) -> CheckResult:
        """The folder exists (or can be created) and a file can be created in it."""
        cfg: FolderConfig = self.config  # type: ignore[assignment]
        folder = self.folder
        if not folder.exists():
            parent = next((p for p in folder.parents if p.exists()), None)
            if cfg.create and parent is not None and parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
                return CheckResult.success(f"{folder} does not exist yet; it will be created under {parent}")
            return CheckResult.failure(FailureKind.CONFIGURATION, f"{folder} does not exist")
        if not folder.is_dir():
            return CheckResult.failure(FailureKind.CONFIGURATION, f"{folder} is not a directory")
        try:
            with tempfile.NamedTemporaryFile(prefix=".kwhub-check.", dir=folder):
                pass
        except OSError as exc:
            kind = FailureKind.TRANSIENT if exc.errno in RETRYABLE_ERRNO else FailureKind.CONFIGURATION
            return CheckResult.failure(kind, f"cannot write in {folder}: {exc.strerror or exc}")
        return CheckResult.success(f"{folder} is writable")
