"""Disclosures of a period from the store: the GHG inventory and the files each format writes.

:func:`period_disclosure` computes a month (``2026-10``) or a year (``2026``: every month
with settled runs) from the frozen inputs (:mod:`kwhub.hub.esg.inputs`) and returns a
:class:`kwhub.core.disclosure.Disclosure`; :func:`write_disclosure` hands it to the ESG plugin of
each requested format and runs that plugin's check on what it wrote. Plain functions of a
database and a configuration, for the CLI, the demo and later jobs and routes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from kwhub.core.adapters import EsgReporter
from kwhub.core.carbon_period import PeriodCarbon, compute_period
from kwhub.core.disclosure import Disclosure
from kwhub.core.factors import gwp_set
from kwhub.core.inventory import build_disclosure
from kwhub.core.settlement import SettlementError
from kwhub.core.timeline import billing_period
from kwhub.hub.esg.inputs import period_inputs
from kwhub.hub.store import Database

_YEAR = re.compile(r"^\d{4}$")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def months_of(period: str) -> list[str]:
    """The billing months of a report period: ``YYYY`` (the twelve months) or ``YYYY-MM``."""
    if _YEAR.match(period):
        return [f"{period}-{m:02d}" for m in range(1, 13)]
    if _MONTH.match(period):
        return [period]
    raise SettlementError(f"period {period!r}: give a year (2026) or a month (2026-10)")


def period_carbon(db: Database, cfg: Any, period: str) -> tuple[list[PeriodCarbon], list[str]]:
    """The computed months of ``period`` and notes on months without settled runs."""
    out: list[PeriodCarbon] = []
    notes: list[str] = []
    for label in months_of(period):
        try:
            inputs = period_inputs(db, cfg.campus, label)
        except SettlementError:
            notes.append(f"{label}: no settled run with a carbon basis; the month is not in this report")
            continue
        out += [compute_period(inp, cfg.emissions) for inp in inputs]
    if not out:
        raise SettlementError(f"no settled run of {period} carries a carbon basis, so there is nothing to report "
                              f"(settle it first: `kwhub settle --period {months_of(period)[-1]}`)")
    return out, notes


def period_disclosure(db: Database, cfg: Any, period: str, party: str | None = None,
                      gwp: str | None = None) -> Disclosure:
    """The GHG inventory of ``period`` (all parties, or ``party``), CO2e under ``gwp`` (default: ``[emissions] gwp_set``)."""
    computed, notes = period_carbon(db, cfg, period)
    months = months_of(period)
    tz = cfg.hub.timezone
    first: date = billing_period(months[0], tz).first_day
    last: date = billing_period(months[-1], tz).last_day
    d = build_disclosure(cfg.campus, cfg.hub.name, period, first, last, computed, cfg.emissions,
                         gwp_set(gwp or cfg.emissions.gwp_set))
    d = d.model_copy(update={"notes": notes + d.notes})
    if party is not None:
        try:
            d = d.only(party)
        except KeyError as exc:
            raise SettlementError(str(exc.args[0])) from None
    return d


def writer_types() -> dict[str, type[EsgReporter]]:
    """Every installed ESG writer by its ``format_id`` (built-in and plugins')."""
    from kwhub.hub.registry import get_registry

    return {cls.format_id: cls for cls in get_registry().adapters.values()
            if issubclass(cls, EsgReporter) and getattr(cls, "format_id", "")}


def writer_for(cfg: Any, format_id: str) -> EsgReporter:
    """The ESG writer of ``format_id``: a configured instance of its type, else one with default settings."""
    types = writer_types()
    if format_id not in types:
        raise SettlementError(f"no ESG writer for format {format_id!r} (installed: {', '.join(sorted(types)) or 'none'})")
    cls = types[format_id]
    configured = cfg.instances_of(cls.type_id)
    if configured:
        return configured[0].build(cfg.context())  # type: ignore[no-any-return]
    return cls(format_id, None, cfg.context())


@dataclass
class WrittenDisclosure:
    """Files one format wrote and what its check found."""

    format_id: str
    paths: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def write_disclosure(cfg: Any, disclosure: Disclosure, formats: list[str], out_dir: Path) -> list[WrittenDisclosure]:
    """Write ``disclosure`` in each format into ``out_dir`` and check each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for fmt in formats:
        writer = writer_for(cfg, fmt)
        paths = writer.write(disclosure, out_dir)
        done.append(WrittenDisclosure(fmt, paths, writer.validate(paths)))
    return done
