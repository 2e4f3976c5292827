"""Versions of a contract's terms: the contract as written, then each amendment.

A contract's own terms are **version 1**, in force from its start. Each entry of
``contract.amendments`` makes the next version from its ``effective`` local day on (in the
contract's time zone), built on the version before: the components it names get the
settings it gives (by component id), ``remove_components`` drops components, a new id adds
one, and ``tax_percent`` / ``tax_category`` replace the contract's. A version is in force
until the day before the next one takes effect.

The **terms** of a version are what prices a period: the components with their settings,
the tax, the money policy and the contract start (which drives escalators). Their
SHA-256 (:attr:`TermsVersion.terms_hash`) is recorded in each run statement, so that a
later run of the same contract can tell when the terms of a settled period changed
(:func:`terms_difference`).

Pure: no I/O. :func:`versions_in_period` splits a billing period at the version
boundaries; :mod:`kwhub.core.pricing.by_version` prices each part.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from kwhub.core.campus import Amendment, ComponentSpec, Contract, component_ids
from kwhub.core.tax_categories import default_category, legacy_tax_key, tax_problems
from kwhub.core.timeline import BillingPeriod, period_between

if TYPE_CHECKING:
    import numpy as np

TERMS_FIELDS = ("start", "currency", "rounding", "precision", "payment_days", "tax_percent", "tax_category")


class AmendmentError(ValueError):
    """Amendments that do not make a valid sequence of versions; the message names the key path."""


@dataclass(frozen=True)
class TermsVersion:
    """One version of a contract's terms.

    ``number`` counts from 1 (the contract as written); ``label`` is the amendment's ``id``
    or ``v<number>``; ``effective`` is the first local day in force (None for version 1:
    from the contract's start); ``until`` the last (None: open-ended); ``contract`` the
    contract with these terms.
    """

    number: int
    label: str
    effective: date | None
    until: date | None
    note: str
    contract: Contract

    @property
    def name(self) -> str:
        """``v2``, or ``v2 (price-reset)`` when the amendment has an id."""
        return f"v{self.number}" if self.label == f"v{self.number}" else f"v{self.number} ({self.label})"

    def terms_json(self) -> dict[str, Any]:
        """The terms as canonical JSON data (what :attr:`terms_hash` covers, see there for zero tax)."""
        return json.loads(self._terms_text)

    @cached_property
    def _terms_text(self) -> str:
        k = self.contract
        out: dict[str, Any] = {f: getattr(k, f) for f in TERMS_FIELDS}
        for f in ("tax_exemption_reason", "tax_exemption_code"):  # only when given: earlier hashes stay
            if getattr(k, f):
                out[f] = getattr(k, f)
        out["components"] = [{"id": cid, "kind": spec.kind, **spec.settings()}
                             for cid, spec in zip(component_ids(k), k.components, strict=True)]
        return json.dumps(out, sort_keys=True, separators=(",", ":"), default=str)

    @cached_property
    def terms_hash(self) -> str:
        """SHA-256 of the terms; zero tax hashes as ``S`` whether written ``Z`` or (before kwhub
        refused it) ``S`` at 0 %, so runs settled then keep matching (:func:`legacy_tax_key`)."""
        data = json.loads(self._terms_text)
        data["tax_category"] = legacy_tax_key(self.contract.tax_category, self.contract.tax_percent)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def as_json(self) -> dict[str, Any]:
        return {"version": self.number, "label": self.label, "name": self.name,
                "effective": self.effective.isoformat() if self.effective else None,
                "until": self.until.isoformat() if self.until else None, "note": self.note,
                "terms_hash": self.terms_hash, "terms": self.terms_json()}


def amendment_problems(contract: Contract) -> list[str]:
    """Every problem of the contract's amendments, as ``amendments[i] ...: what is wrong``."""
    problems: list[str] = []
    start = _start_day(contract)
    ids = list(component_ids(contract))
    previous: date | None = None
    labels: set[str] = set()
    for i, am in enumerate(contract.amendments):
        where = f"amendments[{i}] (effective={am.effective.isoformat()})"
        if start is not None and am.effective <= start:
            problems.append(f"{where}.effective: on or before the contract start {contract.start} "
                            f"(the contract's own terms are in force from {start}); change them there instead")
        if previous is not None and am.effective == previous:
            problems.append(f"{where}.effective: overlaps amendments[{i - 1}], which takes effect the same day; "
                            "merge the two")
        elif previous is not None and am.effective < previous:
            problems.append(f"{where}.effective: out of order ({am.effective} is before {previous} of "
                            f"amendments[{i - 1}]); list amendments by effective day")
        previous = am.effective if previous is None else max(previous, am.effective)
        label = am.id or f"v{i + 2}"
        if label in labels:
            problems.append(f"{where}.id: duplicate version id {label!r}")
        labels.add(label)
        if not (am.components or am.remove_components or am.tax_percent is not None or am.tax_category is not None
                or am.tax_exemption_reason is not None or am.tax_exemption_code is not None):
            problems.append(f"{where}: changes no terms (give components, remove_components, tax_percent "
                            "or tax_category)")
        for r in am.remove_components:
            if r not in ids:
                problems.append(f"{where}.remove_components: no component {r!r} in force "
                                f"(components: {', '.join(ids) or 'none'})")
        ids = [x for x in ids if x not in am.remove_components]
        for c_i, comp in enumerate(am.components):
            if comp.id not in ids:
                if not comp.kind:
                    problems.append(f"{where}.components[{c_i}].kind: {comp.id!r} is no component in force "
                                    f"(components: {', '.join(ids) or 'none'}); give its kind to add it")
                ids.append(comp.id)
    return problems


def _start_day(contract: Contract) -> date | None:
    try:
        y, m = (int(x) for x in contract.start.split("-"))
        return date(y, m, 1)
    except ValueError:
        return None


def _amend(base: Contract, am: Amendment) -> Contract:
    """The contract with ``am`` applied to ``base``'s terms (component ids made explicit)."""
    specs: dict[str, dict[str, Any]] = {
        cid: {"kind": spec.kind, **spec.settings()}
        for cid, spec in zip(component_ids(base), base.components, strict=True)
        if cid not in am.remove_components
    }
    for comp in am.components:
        old = specs.get(comp.id)
        if old is None or (comp.kind and comp.kind != old["kind"]):
            specs[comp.id] = {"kind": comp.kind, **comp.settings()}
        else:
            specs[comp.id] = {**old, **comp.settings()}
    update: dict[str, Any] = {
        "components": [ComponentSpec.model_validate({**s, "id": cid}) for cid, s in specs.items()],
        "amendments": [],
    }
    if am.tax_percent is not None:
        update["tax_percent"] = am.tax_percent
        if am.tax_category is None and base.tax_category in ("S", "Z"):  # a new rate moves S <-> Z with it
            update["tax_category"] = default_category(am.tax_percent)
    if am.tax_category is not None:
        update["tax_category"] = am.tax_category
        update["tax_exemption_reason"] = am.tax_exemption_reason or ""
        update["tax_exemption_code"] = am.tax_exemption_code or ""
    for key in ("tax_exemption_reason", "tax_exemption_code"):
        if getattr(am, key) is not None:
            update[key] = getattr(am, key)
    amended = base.model_copy(update=update)
    problems = tax_problems(amended.tax_category, amended.tax_percent, amended.tax_exemption_reason,
                            amended.tax_exemption_code)
    if problems:
        raise AmendmentError(f"contract {base.id!r} amendment {am.id or am.effective}: " + "; ".join(problems))
    return amended


def contract_versions(contract: Contract) -> list[TermsVersion]:
    """Every version of the contract's terms, oldest first (:class:`AmendmentError` when the
    amendments are not valid, see :func:`amendment_problems`)."""
    problems = amendment_problems(contract)
    if problems:
        raise AmendmentError(f"contract {contract.id!r}: " + "; ".join(problems))
    out: list[TermsVersion] = []
    current = contract
    ams = contract.amendments
    first_until = ams[0].effective - timedelta(days=1) if ams else None
    out.append(TermsVersion(1, "v1", None, first_until, "", contract))
    for i, am in enumerate(ams):
        current = _amend(current, am)
        until = ams[i + 1].effective - timedelta(days=1) if i + 1 < len(ams) else None
        out.append(TermsVersion(i + 2, am.id or f"v{i + 2}", am.effective, until, am.note, current))
    return out


@dataclass(frozen=True)
class VersionPart:
    """The part of a billing period one version prices: its local days (``period``, labelled
    like the whole period) and its intervals ``first:stop`` of the period's interval frame."""

    version: TermsVersion
    period: BillingPeriod
    first: int
    stop: int

    @property
    def intervals(self) -> slice:
        return slice(self.first, self.stop)

    def as_json(self) -> dict[str, Any]:
        v = self.version
        return {"version": v.number, "name": v.name, "label": v.label,
                "effective": v.effective.isoformat() if v.effective else None,
                "first_day": self.period.first_day.isoformat(), "last_day": self.period.last_day.isoformat(),
                "intervals": self.stop - self.first, "terms_hash": v.terms_hash, "terms": v.terms_json()}


def versions_in_period(contract: Contract, period: BillingPeriod, starts: np.ndarray | None = None,
                       versions: Sequence[TermsVersion] | None = None) -> list[VersionPart]:
    """The versions in force in ``period``, each with its local days and interval slice.

    ``starts`` are the UTC epoch-second interval starts of the period (sorted); a version's
    intervals are those starting from local midnight of its first day (one vectorised
    search per boundary). Without ``starts`` the slices are empty.
    """
    import numpy as np  # lazily: configuration checks use this module without arrays

    versions = list(versions) if versions is not None else contract_versions(contract)
    starts = np.asarray(starts if starts is not None else np.zeros(0, dtype=np.int64), dtype=np.int64)
    parts: list[VersionPart] = []
    for v in versions:
        first = max(period.first_day, v.effective) if v.effective else period.first_day
        last = min(period.last_day, v.until) if v.until else period.last_day
        if first > last:
            continue
        sub = period_between(first, last, period.timezone, label=period.label)
        lo, hi = np.searchsorted(starts, [sub.span.start_epoch, sub.span.end_epoch], side="left")
        parts.append(VersionPart(v, sub, int(lo), int(hi)))
    return parts


def terms_record(parts: Sequence[VersionPart]) -> dict[str, Any]:
    """The ``terms`` section of a run statement: the versions used and one hash over them."""
    versions = [p.as_json() for p in parts]
    digest = hashlib.sha256(json.dumps(
        [[v["version"], v["first_day"], v["last_day"], v["terms_hash"]] for v in versions],
        separators=(",", ":")).encode("utf-8")).hexdigest()
    return {"hash": digest, "versions": versions}


def terms_difference(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two ``terms`` sections (empty when the hashes agree): the versions
    and days in force, then each changed term by its key path."""
    if recorded.get("hash") == current.get("hash"):
        return []
    old, new = list(recorded.get("versions") or []), list(current.get("versions") or [])
    out: list[str] = []

    def days(vs: Sequence[Mapping[str, Any]]) -> str:
        return ", ".join(f"{v['name']} {v['first_day']}..{v['last_day']}" for v in vs)

    if [(v["version"], v["first_day"], v["last_day"]) for v in old] != \
            [(v["version"], v["first_day"], v["last_day"]) for v in new]:
        out.append(f"versions in force were {days(old)}, now {days(new)}")
    def listing(changed: list[str]) -> str:
        if not changed:
            return "changed"
        return "; ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")

    old_by = {v["version"]: v for v in old}
    for i, n in enumerate(new):
        o = old_by.get(n["version"])
        if o is None:  # a version the period did not have: what it changes against the version before it
            base = new[i - 1] if i else (old[-1] if old else {})
            out.append(f"{n['name']} is new in the period: "
                       f"{listing(_diff(base.get('terms') or {}, n.get('terms') or {}))}")
        elif o["terms_hash"] != n["terms_hash"]:
            out.append(f"{n['name']} terms: {listing(_diff(o.get('terms') or {}, n.get('terms') or {}))}")
    gone = [o["name"] for o in old if o["version"] not in {n["version"] for n in new}]
    if gone:
        out.append(f"no longer in force in the period: {', '.join(gone)}")
    return out


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(x, Mapping) and "id" in x for x in value):
        out = {}
        for x in value:
            out.update(_flatten({k: v for k, v in x.items() if k != "id"}, f"{prefix}[{x['id']}]"))
        return out
    return {prefix: value}


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    a, b = _flatten(old), _flatten(new)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<unset>") != b.get(key, "<unset>"):
            out.append(f"{key} {a.get(key, '<unset>')} -> {b.get(key, '<unset>')}")
    return out


def changed_since(run_id: str, status: str, recorded: Mapping[str, Any] | None,
                  current: Mapping[str, Any], period: str = "") -> str | None:
    """``terms [of period P] changed since run X (issued): ...`` when a settled run's recorded
    ``terms`` differ from the terms in force now for its period (None when they agree, or
    when the run recorded none: it was settled before terms were recorded)."""
    if not recorded:
        return None
    diff = terms_difference(recorded, current)
    if not diff:
        return None
    of = f" of period {period}" if period else ""
    return f"terms{of} changed since run {run_id} ({status.replace('_', ' ')}): " + "; ".join(diff)


def terms_for_period(contract: Contract, period: BillingPeriod) -> dict[str, Any]:
    """The ``terms`` section the contract's terms in force now give ``period`` (no intervals)."""
    return terms_record(versions_in_period(contract, period))


def version_changes(before: TermsVersion, after: TermsVersion) -> list[str]:
    """What ``after`` changes in ``before``'s terms, one ``key before -> after`` per term."""
    return _diff(before.terms_json(), after.terms_json())
