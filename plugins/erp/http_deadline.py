"""An httpx transport whose every socket operation ends by a per-request deadline.

httpx's timeouts bound each connect, read and write on its own: a receiver that trickles
its answer a byte at a time, each within the read timeout, can hold a request for ever.
:class:`DeadlineHTTPTransport` runs httpcore over a network backend that shrinks each
operation's timeout to what is left until the deadline of the calling thread
(:func:`deadline`), so the whole request (connect, TLS, headers, body, answer) is over by
then; past it, the operation raises a timeout (``httpx.ReadTimeout`` and friends).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

_local = threading.local()


@contextmanager
def deadline(at: float | None) -> Iterator[None]:
    """Requests made by this thread inside the block end by ``at`` (a ``time.monotonic()`` instant)."""
    saved = getattr(_local, "deadline", None)
    _local.deadline = at
    try:
        yield
    finally:
        _local.deadline = saved


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    at = getattr(_local, "deadline", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the send deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_tcp(host, port, _bounded(timeout, httpcore.ConnectTimeout), local_address,
                                               socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class DeadlineHTTPTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` (HTTP/1.1, no proxy) that honours :func:`deadline`."""

    def __init__(self, *, verify: ssl.SSLContext | str | bool = True,
                 socket_options: Iterable[Any] | None = None) -> None:
        super().__init__(verify=verify, socket_options=socket_options)
        # The same pool httpx builds, over the deadline-aware network backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify), socket_options=socket_options,
            max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0,  # httpx's defaults
            network_backend=_Backend(),
        )
