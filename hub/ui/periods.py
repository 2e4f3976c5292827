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
    from kwhub.hub.api import runs as runs_api
    from kwhub.hub.ui.flow import ALL

    rows = runs_api.list_runs(request=request, period=None, contract=None, status=None, who=who.principal,
                              params=ALL)["items"]
    if rows:
        return max(r["period"] for r in rows)
    from kwhub.core.timeline import zone

    hub = request.app.state.hub
    return hub.now().astimezone(zone(hub.config.hub.timezone)).strftime("%Y-%m")  # type: ignore[no-any-return]
