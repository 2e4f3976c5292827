"""The webhook signature (scheme ``v2``): what kwhub signs and how a receiver checks it.

Every request the ``erp.webhook`` transport sends carries::

    X-Kwhub-Signature: t=<unix seconds>,v2=<hex HMAC-SHA256>

The HMAC key is the transport's ``secret``; the message is these six lines joined by
``\\n`` (no trailing newline), UTF-8::

    kwhub-webhook-v2
    <METHOD>              the HTTP method, upper case ("POST")
    <path>                the request target as sent: path plus "?query" if any ("/invoices")
    <t>                   the same unix seconds as in the header
    <Idempotency-Key>     the header's value ("" when the request has none)
    <sha256(body)>        lower-case hex SHA-256 of the raw body bytes

A receiver recomputes the HMAC over what it received, compares in constant time, refuses a
timestamp more than a few minutes away from its clock, and imports a key only once. Since
the method, path, key and body are all signed, a captured request cannot be replayed
under another idempotency key (it would be imported again) or as another kind of request,
and the bodiless signature of ``kwhub adapters check`` (an ``OPTIONS`` request) does not
authorise a ``POST``. :func:`verify_request` is that check, for receivers written in
Python (``kwhub.hub.demo.erp_receiver`` uses it); the message format above is all another language
needs. The earlier body-only scheme (``v1``) is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

SIGNATURE_HEADER = "X-Kwhub-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "kwhub-webhook-v2"
DEFAULT_TOLERANCE_S = 300.0


def signing_message(method: str, path: str, timestamp: int, idempotency_key: str, body: bytes) -> bytes:
    """The bytes the HMAC covers (see the module docs)."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((SCHEME, method.upper(), path, str(int(timestamp)), idempotency_key, digest)).encode("utf-8")


def sign_request(secret: str, method: str, path: str, timestamp: int, idempotency_key: str, body: bytes) -> str:
    """The ``X-Kwhub-Signature`` value for one request."""
    mac = hmac.new(secret.encode("utf-8"), signing_message(method, path, timestamp, idempotency_key, body),
                   hashlib.sha256).hexdigest()
    return f"t={int(timestamp)},v2={mac}"


def _header(headers: Mapping[str, Any], name: str) -> str:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP header names are not
        lowered = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == lowered), None)
    return "" if value is None else str(value)


def verify_request(secret: str, method: str, path: str, headers: Mapping[str, Any], body: bytes, *,
                   tolerance_s: float = DEFAULT_TOLERANCE_S, now: float | None = None,
                   header: str = SIGNATURE_HEADER) -> str:
    """Check a received request's signature: ``""`` when it is valid and fresh, else the reason.

    ``path`` is the request target as received (path and query); ``headers`` any mapping
    of the request's headers. Refuse the request when the result is not empty.
    """
    value = _header(headers, header)
    if not value:
        return "missing signature"
    fields: dict[str, str] = {}
    for part in value.split(","):
        k, sep, v = part.strip().partition("=")
        if sep:
            fields[k] = v
    if "v2" not in fields:
        if "v1" in fields:
            return "signature scheme v1 (body only) is not accepted; v2 signs method, path, key and body"
        return "malformed signature header"
    if "t" not in fields:
        return "malformed signature header"
    try:
        ts = int(fields["t"])
    except ValueError:
        return "signature timestamp is not an integer"
    if abs((now if now is not None else time.time()) - ts) > tolerance_s:
        return "signature timestamp outside the tolerance"
    key = _header(headers, IDEMPOTENCY_HEADER)
    expected = hmac.new(secret.encode("utf-8"), signing_message(method, path, ts, key, body),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["v2"]):
        return "signature mismatch"
    return ""
