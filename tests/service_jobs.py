"""Job functions the scheduler tests configure through ``[[scheduler.jobs]]`` (plain functions of a Hub)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def tick(hub: Any, ctx: Any) -> dict[str, Any]:
    """Append ``job slot pid`` to ``$KWHUB_TEST_TICKS``: one line per run of a slot."""
    with Path(os.environ["KWHUB_TEST_TICKS"]).open("a") as fh:
        fh.write(f"{ctx.job_id} {ctx.slot.isoformat()} {os.getpid()}\n")
    return {"pid": os.getpid()}


def settle_then_wait(hub: Any, ctx: Any) -> dict[str, Any]:
    """Settle October, then say so in ``$KWHUB_TEST_MARKER`` and keep running (to be killed mid-job)."""
    outcomes = hub.settle("2026-10", now=hub.now())
    Path(os.environ["KWHUB_TEST_MARKER"]).write_text(f"{os.getpid()} {[o.status for o in outcomes]}\n")
    time.sleep(float(os.environ.get("KWHUB_TEST_WAIT", "60")))
    return {"statuses": [o.status for o in outcomes]}
