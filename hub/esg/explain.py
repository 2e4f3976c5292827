"""Load what ``kwhub explain INVOICE --carbon`` needs: the run's frozen carbon basis and the buyer's split."""

from __future__ import annotations

from typing import Any

import numpy as np

from kwhub.core.allocation import UNMETERED, unpack_array
from kwhub.core.carbon_activity import CarbonActivity
from kwhub.core.carbon_factors import FactorSet
from kwhub.core.carbon_settings import EmissionsSettings
from kwhub.core.emissions import Intensity, source_intensity
from kwhub.core.explain import ExplainError
from kwhub.core.invoice import Invoice
from kwhub.hub.esg.carbon_store import read_blobs
from kwhub.hub.settle.runs_read import get_run, run_allocation
from kwhub.hub.store import Database


def line_carbon_inputs(db: Database, cfg: Any, invoice: Invoice) -> tuple[
        dict[str, Any], CarbonActivity, FactorSet, Intensity, np.ndarray]:
    """``(statement, activity, factors, intensity, buyer split (S+1, N))`` of the invoice's run."""
    run = get_run(db, invoice.run_id)
    statement = run["statement_json"]
    section = statement.get("carbon")
    if not section:
        raise ExplainError(f"run {invoice.run_id} of invoice {invoice.number} has no carbon basis (it bills metered "
                           "energy, or it was settled before emissions were recorded)")
    with db.engine.connect() as conn:
        blobs = read_blobs(conn, [section["activity_id"], section["factors_id"]])
    activity = CarbonActivity.from_stored(section["activity"], blobs[section["activity_id"]])
    factors = FactorSet.from_json(section["factors"], blobs[section["factors_id"]])
    frozen = section.get("settings")
    settings = EmissionsSettings.model_validate(frozen) if frozen else cfg.emissions
    intensity = source_intensity(activity, factors, settings)
    names = [s.id for s in activity.sources] + [UNMETERED]
    split = np.zeros((len(names), activity.n))
    buyer = statement["contract"]["buyer"]
    for row in run_allocation(db, invoice.run_id):
        if row["tenant"] == buyer and row["source"] in names:
            split[names.index(row["source"])] = unpack_array(bytes(row["blob"]))
    return statement, activity, factors, intensity, split
