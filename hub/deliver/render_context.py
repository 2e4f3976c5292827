"""Build the :class:`~kwhub.core.render_context.RenderContext` of an issued invoice from the store.

:func:`render_context` reads the invoice's settlement run (``get_run``), the channel-days it
read (``run_inputs``) and its stored allocation (``run_allocation``):

* **usage**: the energy the invoice prices, per settlement interval. For a contract priced
  by source it is the buyer's allocated energy from the run's own ``run_allocation``
  rows (the sources the statement lists); otherwise the sum of the contract's load
  channels, read from the interval store at exactly the day versions the run read (each
  checked against its recorded content hash). Intervals the run counted as missing are 0,
  as the run counted them.
* **lineage**: the run id, its number of channel-day hashes, the inputs digest and the
  statement hash (what ``kwhub explain`` shows);
* **explain**: the interval grid, missing intervals and the allocation summary.

Everything comes from what the run froze, so the context, and with it every rendering of
the document, is the same at issue time, at delivery and years later.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np

from kwhub.core.allocation import unpack_array
from kwhub.core.campus import Campus
from kwhub.core.intervals import day_start_epoch
from kwhub.core.invoice import Invoice
from kwhub.core.render_context import Lineage, RenderContext, RunExplanation, UsageSeries
from kwhub.core.settlement import SettlementError, kwh_factor, load_channels, regrid


class RenderContextError(SettlementError):
    """The run's frozen inputs cannot be read back as they were (lineage broken)."""


def render_context(source: Any, invoice: Invoice, campus: Campus | None = None, *, db: Any = None) -> RenderContext:
    """The render context of ``invoice`` (empty when it has no settlement run).

    ``source`` is a :class:`~kwhub.hub.store.Database` or a connection inside the caller's
    transaction (issuing renders before its transaction commits); ``db`` is the database
    whose interval store holds the channel-days (default: ``source`` when it is one).
    ``campus`` is needed only for contracts that price metered load channels.
    """
    from kwhub.hub.settle.runs_read import get_run, run_allocation, run_inputs

    if not invoice.run_id:
        return RenderContext()
    try:
        run = get_run(source, invoice.run_id)
    except SettlementError:
        return RenderContext()
    st = run["statement_json"]
    span, inputs, alloc = st["span"], st["inputs"], st.get("allocation") or {}
    lineage = Lineage(run_id=run["id"], channel_days=int(inputs["count"]), inputs_digest=inputs["digest"],
                      statement_hash=run["statement_hash"], channels=tuple(inputs["channels"]),
                      layers=tuple(inputs["layers"]), stale=bool(run["stale"]))
    sources = alloc.get("sources") if isinstance(alloc.get("sources"), dict) else {}
    explain = RunExplanation(interval_minutes=int(span["interval_minutes"]), intervals=int(span["intervals"]),
                             missing_intervals=int(inputs.get("missing_intervals", 0)),
                             allocation_method=str(alloc.get("method") or ""),
                             sources_kwh={k: str(v.get("kwh", "")) for k, v in sources.items()})
    start = datetime.fromisoformat(span["start"])
    minutes, n = int(span["interval_minutes"]), int(span["intervals"])
    starts = np.datetime64(start.astimezone(UTC).replace(tzinfo=None), "m") \
        + np.arange(n, dtype=np.int64).astype("timedelta64[m]") * minutes
    usage: UsageSeries | None = None
    tenant = alloc.get("tenant")
    if tenant:
        rows = [r for r in run_allocation(source, invoice.run_id) if r["tenant"] == tenant and r["source"] in sources]
        if rows:
            kwh = np.sum([unpack_array(bytes(r["blob"])) for r in rows], axis=0)
            usage = UsageSeries(starts, np.nan_to_num(kwh), minutes, "allocated")
    elif campus is not None:
        contract = next((c for c in campus.contracts if c.id == invoice.contract_id), None)
        store = getattr(db if db is not None else source, "intervals", None)
        if contract is not None and store is None:
            raise RenderContextError(f"invoice {invoice.number}: the usage of a metered contract needs the "
                                     "interval store (pass db)")
        if contract is not None:
            kwh = _metered(store, campus, load_channels(campus, contract), run_inputs(source, invoice.run_id),
                           int(start.timestamp()), minutes, n, invoice.run_id)
            usage = UsageSeries(starts, kwh, minutes, "metered")
    return RenderContext(usage=usage, lineage=lineage, explain=explain)


def _metered(store: Any, campus: Campus, channels: list[str], inputs: list[Any], s0: int, minutes: int, n: int,
             run_id: str) -> np.ndarray:
    """Sum of ``channels`` in kWh per settlement interval, from the day versions the run read."""
    total = np.zeros(n)
    by_channel: dict[str, list[Any]] = defaultdict(list)
    for ref in inputs:
        by_channel[ref.channel_id].append(ref)
    for ch in channels:
        refs = by_channel.get(ch, [])
        if not refs:
            continue
        spec = campus.channel(ch)
        own = spec.interval_minutes
        step = own * 60
        series = np.zeros(n * (minutes // own))
        groups: dict[tuple[str, int], list[Any]] = defaultdict(list)
        for r in refs:
            groups[(r.layer, r.version)].append(r)
        for (layer, version), group in groups.items():
            wanted = {r.day: r.content_hash for r in group}
            blocks = store.read_blocks(ch, min(wanted), max(wanted), layer=layer, version=version)
            found = {b.day: b for b in blocks if b.day in wanted}
            for day, digest in wanted.items():
                block = found.get(day)
                if block is None or block.content_hash() != digest:
                    raise RenderContextError(
                        f"run {run_id}: channel {ch} day {day} {layer} version {version} is no longer stored as the "
                        "run read it; its usage cannot be shown (see `kwhub explain`)")
                first = (day_start_epoch(day) - s0) // step
                vals = np.nan_to_num(block.values) * kwh_factor(spec, own)
                lo, hi = max(first, 0), min(first + vals.size, series.size)
                if hi > lo:
                    series[lo:hi] = vals[lo - first:hi - first]
        total += regrid(series[None, :], minutes // own, "sum")[0]
    return total
