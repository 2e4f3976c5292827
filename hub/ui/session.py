"""Dashboard sessions: an API key signed in once, a signed session cookie, a CSRF token per session.

The cookie holds only a random session id and its HMAC-SHA256 signature (the server's
secret is made at start-up and never leaves the process). The API key itself stays in the
server's memory, so the cookie is worthless without this process; every request checks the
key again with :func:`kwhub.hub.api.keys.verify_token`, so a revoked or expired key ends
its sessions. Sessions end after ``idle_s`` seconds without a request, on sign-out, or when
the service restarts (sign in again).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

COOKIE = "kwhub_session"
PRE_COOKIE = "kwhub_signin"  # the sign-in form's CSRF token, before there is a session
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass
class Session:
    """One signed-in browser: the key it signed in with and its CSRF token."""

    sid: str
    token: str
    csrf: str
    seen: float = field(default_factory=time.monotonic)


class SessionStore:
    """Sessions of this process, by id, with signed cookie values."""

    def __init__(self, secret: bytes | None = None, idle_s: float = 8 * 3600) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._idle_s = idle_s
        self._items: dict[str, Session] = {}
        self._lock = threading.Lock()

    def sign(self, value: str) -> str:
        mac = hmac.new(self._secret, value.encode(), hashlib.sha256).hexdigest()
        return f"{value}.{mac}"

    def unsign(self, signed: str | None) -> str | None:
        """The value of a cookie this store signed; None for anything else."""
        if not signed or "." not in signed:
            return None
        value, _, mac = signed.rpartition(".")
        good = hmac.new(self._secret, value.encode(), hashlib.sha256).hexdigest()
        return value if hmac.compare_digest(mac, good) else None

    def create(self, token: str) -> tuple[str, Session]:
        """A new session for ``token``: (the cookie value, the session)."""
        sess = Session(secrets.token_urlsafe(32), token, secrets.token_urlsafe(32))
        with self._lock:
            self._prune()
            self._items[sess.sid] = sess
        return self.sign(sess.sid), sess

    def get(self, cookie: str | None) -> Session | None:
        sid = self.unsign(cookie)
        if sid is None:
            return None
        now = time.monotonic()
        with self._lock:
            sess = self._items.get(sid)
            if sess is None or now - sess.seen > self._idle_s:
                self._items.pop(sid, None)
                return None
            sess.seen = now
        return sess

    def drop(self, cookie: str | None) -> None:
        sid = self.unsign(cookie)
        if sid is not None:
            with self._lock:
                self._items.pop(sid, None)

    def _prune(self) -> None:
        now = time.monotonic()
        for sid in [s for s, v in self._items.items() if now - v.seen > self._idle_s]:
            del self._items[sid]


def same_token(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of two CSRF tokens (False when either is missing)."""
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))
