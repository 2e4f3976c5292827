"""Dashboard sessions, kept in the database so every worker and every instance on one database knows them.

The cookie holds a random 256-bit session id; the database (table ``ui_session``, migration
``0014_ui_session``) holds only its SHA-256, the API key's id (never the key), and when the
session was made, last seen and ends. Each request reads the session joined with its key, so:

* a session made through one worker or app instance is accepted by every other one;
* signing out deletes the row: the session ends everywhere at once;
* revoking or expiry of the key ends its sessions everywhere at once (the join refuses a revoked
  or expired key; revoking through the dashboard also deletes the key's rows);
* a session ends ``idle_s`` seconds after its last request (8 hours; the end is moved on at most
  once a minute, so most requests only read).

The CSRF token of a session is HMAC-SHA256 of a fixed label keyed by the session id: bound to the
session, known only to whoever holds the cookie, and never stored. The sign-in form's token
(before there is a session) is signed with a secret shared through the database (table
``ui_secret``), so the form may be shown by one worker and posted to another.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from kwhub.hub.api.keys import Principal
from kwhub.hub.store.service_tables import api_key_table
from kwhub.hub.store.tables import as_utc, utcnow
from kwhub.hub.ui.session_tables import ui_secret_table, ui_session_table

COOKIE = "kwhub_session"
PRE_COOKIE = "kwhub_signin"  # the sign-in form's CSRF token, before there is a session
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SECRET_NAME = "signin-form"
TOUCH_S = 60.0  # the stored end of a session moves on at most this often


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def csrf_of(sid: str) -> str:
    """The CSRF token bound to session ``sid``."""
    return hmac.new(sid.encode(), b"kwhub-ui-csrf", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Session:
    """One signed-in browser: its key's principal (read with the session) and its CSRF token."""

    sid: str
    principal: Principal
    expires_at: datetime

    @property
    def csrf(self) -> str:
        return csrf_of(self.sid)


class SessionStore:
    """Sessions in the database ``db`` (every process on it shares them)."""

    def __init__(self, db: Any, idle_s: float = 8 * 3600) -> None:
        self.db = db
        self.idle_s = idle_s
        self._secret: bytes | None = None

    # ------------------------------------------------------------------ the sign-in form's token

    def secret(self) -> bytes:
        """The signing secret shared by every process on this database (made by the first one)."""
        if self._secret is None:
            t = ui_secret_table
            with self.db.engine.connect() as conn:
                value = conn.execute(select(t.c.value).where(t.c.name == SECRET_NAME)).scalar()
            if value is None:
                try:
                    with self.db.write_transaction() as conn:
                        conn.execute(t.insert().values(name=SECRET_NAME, value=secrets.token_hex(32),
                                                       created_at=utcnow()))
                except IntegrityError:
                    pass  # another process made it first: use theirs
                with self.db.engine.connect() as conn:
                    value = conn.execute(select(t.c.value).where(t.c.name == SECRET_NAME)).scalar_one()
            self._secret = bytes.fromhex(value)
        return self._secret

    def sign(self, value: str) -> str:
        mac = hmac.new(self.secret(), value.encode(), hashlib.sha256).hexdigest()
        return f"{value}.{mac}"

    def unsign(self, signed: str | None) -> str | None:
        """The value of a cookie signed by :meth:`sign` (in any process on this database); None for anything else."""
        if not signed or "." not in signed:
            return None
        value, _, mac = signed.rpartition(".")
        good = hmac.new(self.secret(), value.encode(), hashlib.sha256).hexdigest()
        return value if hmac.compare_digest(mac, good) else None

    # ------------------------------------------------------------------ sessions

    def create(self, principal: Principal, now: datetime | None = None) -> tuple[str, Session]:
        """A new session for the key of ``principal``: (the cookie value, the session).

        Sessions past their end are deleted on the way (so the table holds live ones only)."""
        stamp = now or utcnow()
        sid = secrets.token_urlsafe(32)
        ends = stamp + timedelta(seconds=self.idle_s)
        t = ui_session_table
        with self.db.write_transaction() as conn:
            conn.execute(delete(t).where(t.c.expires_at <= stamp))
            conn.execute(t.insert().values(id_sha256=_digest(sid), key_id=principal.key_id, created_at=stamp,
                                           last_seen_at=stamp, expires_at=ends))
        return sid, Session(sid, principal, ends)

    def get(self, cookie: str | None, now: datetime | None = None) -> Session | None:
        """The live session of ``cookie`` with its key's principal; None when unknown, ended, or its key
        is revoked or expired."""
        if not cookie or len(cookie) > 200:
            return None
        stamp = now or utcnow()
        s, k = ui_session_table, api_key_table
        query = (select(s.c.key_id, s.c.expires_at, s.c.last_seen_at, k.c.role, k.c.party, k.c.scopes,
                        k.c.expires_at.label("key_expires_at"), k.c.revoked_at)
                 .join(k, k.c.id == s.c.key_id).where(s.c.id_sha256 == _digest(cookie)))
        with self.db.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        if row.revoked_at is not None or as_utc(row.key_expires_at) <= stamp or as_utc(row.expires_at) <= stamp:
            self.drop(cookie)
            return None
        ends = as_utc(row.expires_at)
        if (stamp - as_utc(row.last_seen_at)).total_seconds() >= TOUCH_S:
            ends = stamp + timedelta(seconds=self.idle_s)
            with self.db.write_transaction() as conn:
                conn.execute(update(s).where(s.c.id_sha256 == _digest(cookie))
                             .values(last_seen_at=stamp, expires_at=ends))
        principal = Principal(row.key_id, row.role, frozenset(row.scopes), row.party or None)
        return Session(cookie, principal, ends)

    def drop(self, cookie: str | None) -> None:
        """End the session of ``cookie`` (in every process)."""
        if cookie and len(cookie) <= 200:
            t = ui_session_table
            with self.db.write_transaction() as conn:
                conn.execute(delete(t).where(t.c.id_sha256 == _digest(cookie)))

    def end_key(self, key_id: str) -> int:
        """End every session of the key ``key_id`` (it was revoked); the number ended."""
        t = ui_session_table
        with self.db.write_transaction() as conn:
            return int(conn.execute(delete(t).where(t.c.key_id == key_id)).rowcount or 0)


def same_token(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of two CSRF tokens (False when either is missing)."""
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))
