"""HTTPS webhook transport (``erp.webhook``): POST each document to the ERP's endpoint.

Every request carries ``Idempotency-Key: <invoice>:v<version>:<format>`` and, when a
secret is configured, ``X-Kwhub-Signature: t=<unix seconds>,v2=<hex HMAC-SHA256>`` over
the method, the path, the timestamp, the idempotency key and the body's SHA-256
(:mod:`kwhub.hub.helpers.webhook_signature` documents the scheme and gives receivers
:func:`~kwhub.hub.helpers.webhook_signature.verify_request`). A receiver that already has a key answers
2xx (or 409) with ``Idempotent-Replayed: true``; that counts as delivered.

2xx is delivered; 408/425/429 and 5xx, timeouts and connection errors are retried by the
outbox; any other 4xx is final (the response body is kept on the dead letter). Each send
ends by its deadline (``retry.deadline_s``, or the one the outbox relay sets), however
slowly the receiver answers: every socket operation is bounded by the time left
(:mod:`kwhub.plugins.erp.http_deadline`).

Credentials in the URL (``https://user:password@host/...``) are used but never shown:
messages print the URL without them (:func:`display_url`).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import threading
import time
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from kwhub.core.adapters import (
    AdapterConfig,
    CheckResult,
    FailureKind,
    InvoiceTransport,
    OutgoingDocument,
)
from kwhub.hub.helpers.transports import RetrySettings, TransportResult
from kwhub.hub.helpers.webhook_signature import SIGNATURE_HEADER, sign_request
from kwhub.plugins.erp.http_deadline import DeadlineHTTPTransport, deadline

REPLAY_HEADER = "Idempotent-Replayed"
RETRYABLE_4XX = frozenset({408, 425, 429})
KEEP_RESPONSE = 64 * 1024


def display_url(url: str) -> str:
    """``url`` without the user name and password it may carry."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def request_target(url: str) -> str:
    """The request target httpx sends for ``url``: its path (``/`` when empty) and query."""
    return httpx.URL(url).raw_path.decode("ascii")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class WebhookConfig(AdapterConfig):
    """Settings of one webhook instance."""

    url: str
    secret: SecretStr | None = None  # HMAC key; "env:NAME" reads the environment
    signature_header: str = SIGNATURE_HEADER
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0)
    health_url: str = ""  # GET this in check(); default: check_method on url
    check_method: Literal["OPTIONS", "HEAD", "GET"] = "OPTIONS"
    allow_insecure: bool = False  # plain http to a non-loopback host
    verify_tls: bool = True
    ca_file: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    retry: RetrySettings = Field(default_factory=lambda: RetrySettings())

    @field_validator("url", "health_url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL with a host")
        return value

    @model_validator(mode="after")
    def _insecure_only_on_loopback(self) -> WebhookConfig:
        for name in ("url", "health_url"):
            value = getattr(self, name)
            if value and urlsplit(value).scheme == "http" and not self.allow_insecure:
                if not _is_loopback(urlsplit(value).hostname or ""):
                    raise ValueError(
                        f"{name}: plain http is only allowed to a loopback host; use https or set allow_insecure = true"
                    )
        return self

    def warnings(self) -> list[str]:
        """Valid settings that expose the invoices or the receiver."""
        out = []
        if not self.verify_tls:
            out.append("verify_tls = false: the receiver's TLS certificate is not checked; anyone who can "
                       "intercept the connection receives the invoices")
        if self.secret is None:
            out.append("no secret: requests are not signed, so the receiver cannot tell them from forged ones")
        for name in ("url", "health_url"):
            value = getattr(self, name)
            if value and urlsplit(value).scheme == "http" and not _is_loopback(urlsplit(value).hostname or ""):
                out.append(f"{name}: plain http to {urlsplit(value).hostname} (allow_insecure = true): invoices "
                           "travel unencrypted")
        return out


class WebhookTransport(InvoiceTransport):
    """POST rendered invoices to an ERP webhook, signed, with an idempotency key."""

    type_id: ClassVar[str] = "erp.webhook"
    title: ClassVar[str] = "HTTPS webhook"
    Config: ClassVar[type[AdapterConfig]] = WebhookConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def cfg(self) -> WebhookConfig:
        return self.config  # type: ignore[return-value]

    def client(self) -> httpx.Client:
        """The instance's one keep-alive client, created on first use."""
        with self._lock:
            if self._client is None:
                c = self.cfg
                verify: Any = c.verify_tls
                if c.verify_tls and c.ca_file:
                    verify = str((self.context.work_dir / c.ca_file).resolve())
                # TCP_NODELAY: headers and body go out as separate writes; without it Nagle
                # holds the body back until the headers are acknowledged (a delayed ACK).
                transport = DeadlineHTTPTransport(
                    verify=verify, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                )
                self._client = httpx.Client(
                    transport=transport,
                    timeout=httpx.Timeout(c.read_timeout_s, connect=c.connect_timeout_s),
                    headers={"User-Agent": "kwhub-webhook/1", **c.headers},
                    follow_redirects=False,
                )
            return self._client

    def close(self) -> None:
        """Close the keep-alive connections."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _signed(self, method: str, url: str, key: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        if self.cfg.secret is not None:
            target = self._target if url == self.cfg.url else request_target(url)
            headers[self.cfg.signature_header] = sign_request(
                self.cfg.secret.get_secret_value(), method, target, int(time.time()), key, body)
        return headers

    @functools.cached_property
    def _url(self) -> httpx.URL:
        """The invoice URL, parsed once (not for every send)."""
        return httpx.URL(self.cfg.url)

    @functools.cached_property
    def _target(self) -> str:
        return self._url.raw_path.decode("ascii")

    def send(self, doc: OutgoingDocument) -> TransportResult:
        """POST ``doc`` (over by its deadline); classify the answer as delivered, retryable or final."""
        budget = self.cfg.retry.send_deadline_s
        left = doc.time_left(budget)
        if left <= 0:
            return TransportResult(False, None, "timeout: the send deadline passed before the request started",
                                   retryable=True)
        headers = self._signed("POST", self.cfg.url, doc.idempotency_key, doc.body, {
            "Content-Type": doc.media_type,
            "Idempotency-Key": doc.idempotency_key,
            "X-Kwhub-Filename": doc.filename,
            "X-Kwhub-Invoice": doc.invoice_id,
            "X-Kwhub-Format": doc.format_id,
        })
        started = time.monotonic()
        try:
            with deadline(started + left):
                resp = self.client().post(self._url, content=doc.body, headers=headers)
        except httpx.TimeoutException as exc:
            return TransportResult(False, None, f"timeout after {time.monotonic() - started:.1f} s "
                                   f"(send deadline {left:.1f} s): {type(exc).__name__} {exc}".strip(), retryable=True)
        except httpx.TransportError as exc:
            return TransportResult(False, None, f"connection error: {type(exc).__name__} {exc}".strip(), retryable=True)
        text = resp.text[:KEEP_RESPONSE]
        replayed = resp.headers.get(REPLAY_HEADER, "").lower() == "true"
        code = resp.status_code
        if 200 <= code < 300:
            return TransportResult(True, code, "duplicate: receiver already had this key" if replayed else "delivered",
                                   response=text, duplicate=replayed)
        if code == 409 and replayed:
            return TransportResult(True, code, "duplicate: receiver already had this key", response=text, duplicate=True)
        if 500 <= code < 600 or code in RETRYABLE_4XX:
            return TransportResult(False, code, f"HTTP {code} {resp.reason_phrase}", retryable=True, response=text)
        return TransportResult(False, code, f"HTTP {code} {resp.reason_phrase} (not retried)", retryable=False,
                               response=text)

    def check(self) -> CheckResult:
        """Reach the endpoint (or ``health_url``) and classify what comes back."""
        c = self.cfg
        url, method = (c.health_url, "GET") if c.health_url else (c.url, c.check_method)
        shown = display_url(url)
        try:
            with deadline(time.monotonic() + c.connect_timeout_s + c.read_timeout_s):
                resp = self.client().request(method, url, headers=self._signed(method, url, "", b"", {}))
        except httpx.TimeoutException as exc:
            return CheckResult.failure(FailureKind.TRANSIENT, f"{shown}: timed out ({type(exc).__name__})")
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate" in str(exc).lower():
                return CheckResult.failure(FailureKind.CONFIGURATION, f"{shown}: TLS certificate not trusted: {exc}")
            return CheckResult.failure(FailureKind.TRANSIENT, f"{shown}: cannot connect: {exc}")
        except httpx.TransportError as exc:
            return CheckResult.failure(FailureKind.TRANSIENT, f"{shown}: {type(exc).__name__}: {exc}")
        code = resp.status_code
        if code in (401, 403, 404, 407):
            return CheckResult.failure(FailureKind.CONFIGURATION, f"{method} {shown} answered HTTP {code}", status=code)
        if code >= 500:
            return CheckResult.failure(FailureKind.TRANSIENT, f"{method} {shown} answered HTTP {code}", status=code)
        return CheckResult.success(f"{method} {shown} answered HTTP {code}", status=code)
