"""Which billing period a page shows when the address does not say."""

from __future__ import annotations

import re
from typing import Any

from kwhub.hub.ui.auth import UiError

PERIOD_RE = re.compile(r"^(19|20|21)\d{2}-(0[1-9]|1[0-2])$")


def chosen_period(request: Any, who: Any, period: str) -> str:
    """``period`` if given (checked), else the latest period with settlement runs this caller sees, else this month."""
    if period:
        if not PERIOD_RE.match(period):
            raise UiError(422, f"Period {period!r} is not YYYY-MM (for example 2026-10).")
        return period
    hub = request.app.state.hub
    latest = latest_run_period(hub, who.principal)
    if latest:
        return latest
    from kwhub.core.timeline import zone

    return hub.now().astimezone(zone(hub.config.hub.timezone)).strftime("%Y-%m")  # type: ignore[no-any-return]


def latest_run_period(hub: Any, who: Any) -> str:
    """The latest period with a settlement run whose contract's buyer ``who`` sees (the rule of the API's
    run list), or "". One narrow query: the run's contract and period only (its columns come before the
    stored statement, so the large rows are not read)."""
    from sqlalchemy import select

    from kwhub.hub.store.settlement_tables import settlement_run_table as t

    buyers = {c.id: c.buyer for c in hub.campus.contracts}
    with hub.db.engine.connect() as conn:
        pairs = conn.execute(select(t.c.contract_id, t.c.period).distinct()).all()
    return max((period for contract, period in pairs if who.sees(buyers.get(contract))), default="")
