"""SFTP transport (``erp.sftp``): upload each document to a directory on the ERP's server.

The document is uploaded under a hidden temporary name in the target directory, fsynced
when the server supports it, and renamed over the final name with the OpenSSH
``posix-rename`` extension (atomic on the server); a server without it gets a plain
rename. The file gets the permissions ``file_mode`` names (default ``"0640"``, so the
receiving group can read it). Authentication is by private key and/or password (``SecretStr``, ``"env:NAME"``
allowed); the server's host key is checked against ``known_hosts`` unless
``host_key_checking = false``, which the configuration warns about on every load and the
transport logs on every connection. Each send ends by its deadline (``retry.deadline_s`` or
the relay's), connection included.

asyncssh is asynchronous; each transport instance runs its own event loop on a daemon
thread and keeps one SSH connection open across sends (reconnecting when it drops).
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import threading
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import asyncssh
from pydantic import Field, SecretStr, model_validator

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

T = TypeVar("T")
log = logging.getLogger("kwhub.sftp")
HOST_KEY_WARNING = ("host_key_checking = false: the server's host key is not checked; anyone who can intercept "
                    "the connection can pose as the server and receive the invoices")

# SFTP status errors that a retry will not fix.
_FINAL_SFTP = (asyncssh.SFTPNoSuchFile, asyncssh.SFTPPermissionDenied, asyncssh.SFTPNotADirectory,
               asyncssh.SFTPWriteProtect, asyncssh.SFTPInvalidFilename, asyncssh.SFTPNoSuchPath)


class SftpConfig(FileModeConfig):
    """Settings of one SFTP instance."""

    host: str
    port: int = Field(22, ge=1, le=65535)
    username: str
    password: SecretStr | None = None
    private_key: str = ""  # path to a private key file (relative to kwhub.toml's directory)
    private_key_passphrase: SecretStr | None = None
    known_hosts: str = ""  # path; empty = ~/.ssh/known_hosts
    host_key_checking: bool = True
    remote_dir: str = "."
    connect_timeout_s: float = Field(10.0, gt=0)
    operation_timeout_s: float = Field(60.0, gt=0)
    file_mode: str | int = DEFAULT_FILE_MODE  # permissions of each uploaded file, e.g. "0640"
    retry: RetrySettings = Field(default_factory=lambda: RetrySettings())


    @model_validator(mode="after")
    def _needs_credentials(self) -> SftpConfig:
        if not self.private_key and self.password is None:
            raise ValueError("give private_key or password (or both)")
        return self

    def warnings(self) -> list[str]:
        """Valid settings that expose the invoices."""
        return [] if self.host_key_checking else [HOST_KEY_WARNING]


def classify(exc: BaseException) -> tuple[FailureKind, str]:
    """Map an SSH/SFTP/network exception to a failure kind and a one-line message."""
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return FailureKind.CONFIGURATION, f"host key not verifiable: {exc}"
    if isinstance(exc, asyncssh.PermissionDenied):
        return FailureKind.CONFIGURATION, f"authentication failed: {exc}"
    if isinstance(exc, _FINAL_SFTP):
        return FailureKind.CONFIGURATION, f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (asyncssh.Error, OSError, TimeoutError, asyncssh.SFTPError)):
        return FailureKind.TRANSIENT, f"{type(exc).__name__}: {exc}"
    return FailureKind.SYSTEM, f"{type(exc).__name__}: {exc}"


class SftpTransport(InvoiceTransport):
    """Upload rendered invoices to an SFTP server, atomically (temp name + rename)."""

    type_id: ClassVar[str] = "erp.sftp"
    title: ClassVar[str] = "SFTP upload"
    Config: ClassVar[type[AdapterConfig]] = SftpConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._conn_lock: asyncio.Lock | None = None
        self._warned = False

    @property
    def cfg(self) -> SftpConfig:
        return self.config  # type: ignore[return-value]

    # -- event loop plumbing -------------------------------------------------------------
    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=f"sftp-{self.instance_id}", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        limit = timeout if timeout is not None else self.cfg.connect_timeout_s + self.cfg.operation_timeout_s
        return fut.result(limit + 5)

    def close(self) -> None:
        """Close the SSH connection and stop the event loop thread."""
        with self._start_lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._disconnect(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10)
        loop.close()

    # -- connection ----------------------------------------------------------------------
    def _path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.context.work_dir / p

    def _connect_options(self) -> dict[str, Any]:
        c = self.cfg
        opts: dict[str, Any] = {
            "host": c.host, "port": c.port, "username": c.username,
            "connect_timeout": c.connect_timeout_s, "agent_path": None,
        }
        if not c.host_key_checking:
            opts["known_hosts"] = None
        elif c.known_hosts:
            opts["known_hosts"] = str(self._path(c.known_hosts))
        if c.private_key:
            passphrase = c.private_key_passphrase.get_secret_value() if c.private_key_passphrase else None
            opts["client_keys"] = [asyncssh.read_private_key(str(self._path(c.private_key)), passphrase)]
        else:
            opts["client_keys"] = []
        if c.password is not None:
            opts["password"] = c.password.get_secret_value()
        return opts

    async def _client(self) -> asyncssh.SFTPClient:
        if self._conn_lock is None:
            self._conn_lock = asyncio.Lock()
        async with self._conn_lock:
            if self._sftp is None or self._conn is None or self._conn.is_closed():
                await self._disconnect()
                self._conn = await asyncssh.connect(**self._connect_options())
                self._sftp = await self._conn.start_sftp_client()
            return self._sftp

    async def _disconnect(self) -> None:
        sftp, conn = self._sftp, self._conn
        self._sftp = self._conn = None
        if sftp is not None:
            sftp.exit()
        if conn is not None:
            conn.close()
            try:
                await asyncio.wait_for(conn.wait_closed(), 5)
            except (TimeoutError, asyncssh.Error, OSError):
                pass

    # -- operations ----------------------------------------------------------------------
    async def _upload(self, name: str, body: bytes) -> TransportResult:
        sftp = await self._client()
        final = posixpath.join(self.cfg.remote_dir, name)
        try:
            attrs = await sftp.stat(final)
            if attrs.size == len(body):
                async with sftp.open(final, "rb") as fh:
                    if await fh.read() == body:
                        return TransportResult(True, None, f"duplicate: {final} already holds this document",
                                               duplicate=True)
        except asyncssh.SFTPNoSuchFile:
            pass
        tmp = posixpath.join(self.cfg.remote_dir, f".{name}.{uuid.uuid4().hex}.part")
        try:
            async with sftp.open(tmp, "wb", asyncssh.SFTPAttrs(permissions=self.cfg.mode)) as fh:
                await fh.write(body)
                try:
                    await fh.fsync()
                except asyncssh.SFTPOpUnsupported:
                    pass
            await sftp.chmod(tmp, self.cfg.mode)  # the server's umask may have narrowed the open's mode
            try:
                await sftp.posix_rename(tmp, final)
            except asyncssh.SFTPOpUnsupported:
                await sftp.rename(tmp, final)
            tmp = ""
        finally:
            if tmp:
                try:
                    await sftp.remove(tmp)
                except (asyncssh.Error, asyncssh.SFTPError, OSError):
                    pass
        return TransportResult(True, None, f"uploaded to {final}")

    async def _send_async(self, name: str, body: bytes, limit: float) -> TransportResult:
        try:
            return await asyncio.wait_for(self._upload(name, body), limit)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                raise
            await self._disconnect()
            if isinstance(exc, TimeoutError):
                return TransportResult(False, None, f"timeout: the upload did not finish within {limit:.1f} s "
                                       "(send deadline)", retryable=True)
            kind, message = classify(exc)
            return TransportResult(False, None, message, retryable=kind == FailureKind.TRANSIENT)

    def send(self, doc: OutgoingDocument) -> TransportResult:
        """Upload ``doc`` (over by its deadline); an identical remote file counts as a duplicate."""
        try:
            name = safe_filename(doc.filename)
        except ValueError as exc:
            return TransportResult(False, None, str(exc), retryable=False)
        if not self.cfg.host_key_checking and not self._warned:
            self._warned = True
            log.warning("%s (%s:%s): %s", self.instance_id, self.cfg.host, self.cfg.port, HOST_KEY_WARNING)
        limit = min(self.cfg.connect_timeout_s + self.cfg.operation_timeout_s,
                    doc.time_left(self.cfg.retry.send_deadline_s))
        if limit <= 0:
            return TransportResult(False, None, "timeout: the send deadline passed before the upload started",
                                   retryable=True)
        try:
            return self._run(self._send_async(name, doc.body, limit), limit)
        except (OSError, ValueError, asyncssh.Error) as exc:  # e.g. an unreadable private key file
            kind, message = classify(exc)
            if isinstance(exc, (ValueError, asyncssh.KeyImportError)):
                kind, message = FailureKind.CONFIGURATION, f"cannot load private key: {exc}"
            return TransportResult(False, None, message, retryable=kind == FailureKind.TRANSIENT)

    async def _check_async(self) -> CheckResult:
        try:
            sftp = await asyncio.wait_for(self._client(), self.cfg.connect_timeout_s + 5)
            names = [n for n in await sftp.listdir(self.cfg.remote_dir) if n not in (".", "..")]
        except Exception as exc:
            await self._disconnect()
            kind, message = classify(exc)
            return CheckResult.failure(kind, f"{self.cfg.host}:{self.cfg.port}: {message}")
        unchecked = "" if self.cfg.host_key_checking else " (WARNING: the host key was not checked)"
        return CheckResult.success(
            f"connected to {self.cfg.host}:{self.cfg.port}; {self.cfg.remote_dir} lists {len(names)} entries{unchecked}",
            entries=len(names),
        )

    def check(self) -> CheckResult:
        """Connect, authenticate, verify the host key and list the remote directory."""
        try:
            return self._run(self._check_async())
        except (OSError, ValueError, asyncssh.Error) as exc:
            return CheckResult.failure(FailureKind.CONFIGURATION, f"cannot load private key: {exc}")
