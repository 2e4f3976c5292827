"""Reload ``kwhub.toml`` in a running API: validate first, swap only when valid, audit either way."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from kwhub.hub.store import record_audit


class ReloadError(ValueError):
    """The file on disk is not a valid configuration (nothing changed)."""


def _sha(path: str) -> str:
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""


def reload_hub(app: Any, *, actor: str, reason: str) -> dict[str, Any]:
    """Load the configuration file again; on success the app serves from it (same database)."""
    from kwhub.hub.app import Hub
    from kwhub.hub.config import ConfigError, load_config

    old = app.state.hub
    source = old.config.source
    before = app.state.config_sha256
    try:
        cfg = load_config(source, registry=old.registry)
    except ConfigError as exc:
        with old.db.write_transaction() as conn:
            record_audit(conn, "config.reload_refused", actor=actor, object_type="config", object_id=source,
                         detail={"reason": reason, "problems": exc.problems})
        raise ReloadError(str(exc)) from None
    after = _sha(source)
    hub = Hub.from_config(cfg, old.registry, database=old.db)
    hub.issue_listeners.extend(old.issue_listeners)  # e.g. the dashboard's figures (kwhub.hub.ui.flow)
    with old.db.write_transaction() as conn:
        record_audit(conn, "config.reload", actor=actor, object_type="config", object_id=source,
                     detail={"reason": reason, "sha256_before": before, "sha256_after": after,
                             "changed": before != after})
    app.state.hub = hub
    app.state.config_sha256 = after
    warmer = getattr(app.state, "ui_flow_warmer", None)
    if warmer is not None:
        warmer.kick()  # figures computed under the old configuration are not used any more
    return {"config": source, "sha256": after, "changed": before != after}


def config_sha256(hub: Any) -> str:
    return _sha(hub.config.source)
