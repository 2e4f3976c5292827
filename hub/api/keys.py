"""API keys: created with a role, scopes, an optional party and an expiry; shown once; revocable.

A key reads ``kwh_<id>_<secret>``. ``id`` is public (it names the key in the audit log
and in ``kwhub keys list``); the 32-byte ``secret`` is stored only as its SHA-256 and
compared in constant time. Creation and revocation are written to the audit log in the
same transaction as the key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from kwhub.hub.store.audit import record_audit
from kwhub.hub.store.service_tables import ROLES, api_key_table
from kwhub.hub.store.tables import as_utc, utcnow

PREFIX = "kwh_"

SCOPES: dict[str, str] = {
    "campus:read": "the campus: sites, parties, contracts, channels",
    "readings:read": "interval readings of channels",
    "vee:read": "VEE events",
    "runs:read": "settlement runs and their checks",
    "runs:approve": "approve or reject runs",
    "settle:run": "settle a period by hand",
    "invoices:read": "invoices, their renderings and explanations",
    "outbox:read": "deliveries in the outbox",
    "outbox:retry": "send a dead-lettered delivery again",
    "reports:read": "owner statements and emissions summaries",
    "markets:read": "the shadow settlement of ISO statements (variance by charge code)",
    "jobs:read": "scheduled jobs and their history",
    "plugins:read": "installed plugins and adapter types",
    "adapters:check": "run every configured adapter's check",
    "audit:read": "the audit log",
    "keys:read": "API keys (never their secrets)",
    "keys:write": "create and revoke API keys",
    "config:reload": "reload kwhub.toml",
    "webhooks:read": "webhook subscriptions",
}
_READ = [s for s in SCOPES if s.endswith(":read")]
ROLE_SCOPES: dict[str, list[str]] = {
    "operator": list(SCOPES),
    "auditor": _READ,
    "erp": ["invoices:read", "outbox:read", "webhooks:read"],
    "tenant": ["campus:read", "readings:read", "vee:read", "runs:read", "invoices:read", "reports:read",
               "webhooks:read"],
}
PARTY_ROLES = ("tenant", "erp")  # roles that may be limited to one party (tenant: must be)


class KeyRequestError(ValueError):
    """A key that cannot be created or revoked as asked."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role, scopes and party (None: every party)."""

    key_id: str
    role: str
    scopes: frozenset[str]
    party: str | None

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"

    @property
    def row_scope(self) -> str:
        """The value of PostgreSQL's ``kwhub.party`` for this caller's transactions."""
        return "*" if self.party is None else self.party

    def sees(self, party: str | None) -> bool:
        return self.party is None or party == self.party


@dataclass(frozen=True)
class CreatedKey:
    """A new key: the secret is in ``token`` and nowhere else."""

    id: str
    token: str
    role: str
    party: str
    scopes: list[str]
    expires_at: datetime


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(db: Any, *, role: str, party: str = "", scopes: list[str] | None = None, name: str = "",
               days: int, max_days: int, actor: str, known_parties: set[str] | None = None,
               now: datetime | None = None) -> CreatedKey:
    """Create a key (see module docs); the audit entry ``key.create`` is written with it."""
    if role not in ROLES:
        raise KeyRequestError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if role == "tenant" and not party:
        raise KeyRequestError("a tenant key needs --party (the party whose documents and data it may see)")
    if party and role not in PARTY_ROLES:
        raise KeyRequestError(f"a {role} key sees every party; --party is only for {' and '.join(PARTY_ROLES)} keys")
    if party and known_parties is not None and party not in known_parties:
        raise KeyRequestError(f"unknown party {party!r} (configured: {', '.join(sorted(known_parties)) or 'none'})")
    allowed = ROLE_SCOPES[role]
    chosen = list(dict.fromkeys(scopes)) if scopes else list(allowed)
    beyond = [s for s in chosen if s not in allowed]
    if beyond:
        raise KeyRequestError(f"scope(s) {', '.join(beyond)} are not allowed for a {role} key "
                        f"(allowed: {', '.join(allowed)})")
    if not 1 <= days <= max_days:
        raise KeyRequestError(f"expiry must be 1 to {max_days} days (api.key_max_days), not {days}")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    stamp = now or utcnow()
    expires = stamp + timedelta(days=days)
    with db.write_transaction() as conn:
        conn.execute(api_key_table.insert().values(
            id=key_id, name=name, role=role, party=party, scopes=chosen, secret_sha256=_digest(secret),
            created_at=stamp, created_by=actor, expires_at=expires, revoked_at=None, revoked_by=""))
        record_audit(conn, "key.create", actor=actor, object_type="api_key", object_id=key_id,
                     detail={"role": role, "party": party, "scopes": chosen, "name": name,
                             "expires_at": expires.isoformat()})
    return CreatedKey(key_id, f"{PREFIX}{key_id}_{secret}", role, party, chosen, expires)


def revoke_key(db: Any, key_id: str, *, actor: str, reason: str) -> None:
    """Revoke a key now (it answers 401 from then on); the reason goes to the audit log."""
    if not reason.strip():
        raise KeyRequestError("revoking a key needs a reason")
    t = api_key_table
    with db.write_transaction() as conn:
        row = conn.execute(select(t.c.revoked_at).where(t.c.id == key_id)).first()
        if row is None:
            raise KeyRequestError(f"no API key {key_id!r} (`kwhub keys list` shows them)")
        if row.revoked_at is not None:
            raise KeyRequestError(f"API key {key_id} is already revoked")
        conn.execute(update(t).where(t.c.id == key_id).values(revoked_at=utcnow(), revoked_by=actor))
        record_audit(conn, "key.revoke", actor=actor, object_type="api_key", object_id=key_id,
                     detail={"reason": reason})
    CACHE.forget(key_id)


def list_keys(db: Any) -> list[dict[str, Any]]:
    """Every key without its hash, newest first."""
    t = api_key_table
    with db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(t).order_by(t.c.created_at.desc()))]
    now = utcnow()
    for r in rows:
        r.pop("secret_sha256")
        for k in ("created_at", "expires_at", "revoked_at"):
            r[k] = as_utc(r[k])
        r["active"] = r["revoked_at"] is None and r["expires_at"] > now
    return rows


class _Cache:
    """Verified keys for ``ttl`` seconds, so a request does not read the key table each time.

    A key revoked in this process is dropped at once; one revoked elsewhere (the CLI, or
    another uvicorn worker of the same ``kwhub serve``) stops working within ``ttl`` seconds
    (``[api] key_cache_s``, 5 by default; 0 reads the key table on every request). An expired
    key is refused at once (the expiry is checked on every request, cached or not).
    """

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, str, datetime, Principal]] = {}
        self._lock = threading.Lock()
        self.generation = 0  # bumped by every forget: a key read before a revocation is not cached after it

    def get(self, key_id: str, ttl: float) -> tuple[str, datetime, Principal] | None:
        with self._lock:
            item = self._items.get(key_id)
        if item is None or time.monotonic() - item[0] > ttl:
            return None
        return item[1], item[2], item[3]

    def put(self, key_id: str, digest: str, expires: datetime, principal: Principal, generation: int) -> None:
        with self._lock:
            if generation == self.generation:
                self._items[key_id] = (time.monotonic(), digest, expires, principal)

    def forget(self, key_id: str | None = None) -> None:
        with self._lock:
            self.generation += 1
            if key_id is None:
                self._items.clear()
            else:
                self._items.pop(key_id, None)


CACHE = _Cache()


def parse_token(token: str) -> tuple[str, str] | None:
    """``kwh_<id>_<secret>`` -> (id, secret), or None when it is not shaped like a key."""
    if not token.startswith(PREFIX):
        return None
    key_id, sep, secret = token[len(PREFIX):].partition("_")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id, secret


def verify_cached(token: str, *, ttl: float = 5.0, now: datetime | None = None) -> Principal | None | bool:
    """The cache's answer for ``token``, without touching the database: the principal of a
    valid key, None for a malformed, wrong or expired one, False when the cache does not
    know the key (then :func:`verify_token` asks the database). Cheap enough for the event loop
    (one SHA-256 of the secret and a constant-time compare)."""
    parsed = parse_token(token)
    if parsed is None:
        return None
    cached = CACHE.get(parsed[0], ttl)
    if cached is None:
        return False
    return _check(cached, _digest(parsed[1]), now or utcnow())


def _check(cached: tuple[str, datetime, Principal], digest: str, stamp: datetime) -> Principal | None:
    stored, expires, principal = cached
    if not hmac.compare_digest(stored, digest) or expires <= stamp:
        return None
    return principal


def verify_token(db: Any, token: str, *, ttl: float = 5.0, now: datetime | None = None) -> Principal | None:
    """The principal of a valid, unexpired, unrevoked key; None otherwise."""
    parsed = parse_token(token)
    if parsed is None:
        return None
    key_id, secret = parsed
    cached = CACHE.get(key_id, ttl)
    if cached is None:
        t = api_key_table
        generation = CACHE.generation
        with db.engine.connect() as conn:
            row = conn.execute(select(t.c.role, t.c.party, t.c.scopes, t.c.secret_sha256, t.c.expires_at,
                                      t.c.revoked_at).where(t.c.id == key_id)).first()
        if row is None or row.revoked_at is not None:
            return None
        principal = Principal(key_id, row.role, frozenset(row.scopes), row.party or None)
        cached = (row.secret_sha256, as_utc(row.expires_at), principal)
        CACHE.put(key_id, *cached, generation)
    return _check(cached, _digest(secret), now or utcnow())
