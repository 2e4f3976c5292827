"""Granular certificates (EnergyTag-style): bundles, actions and the rules that keep them single.

A certificate is 1 Wh of energy produced (or discharged from storage) by one device in an
interval of at most one hour. Certificates are issued in **bundles**: consecutive
certificate ids ``range_start .. range_end`` of one device and production interval, with
the attributes the GC Scheme Standard asks for (:class:`GcAttributes`). Statuses are the
standard's: Active, Cancelled, Claimed, Expired, Withdrawn, Locked, Reserved, Bundle Split.

Actions (each on a whole bundle or on part of it, which splits it: the parent becomes
``Bundle Split``, two children carry the two id ranges, the acted-on part first):

* **transfer** an Active bundle to another account;
* **cancel** an Active bundle for a beneficiary's consumption in the same hour as the
  production (hourly matching), the status becomes Cancelled;
* **claim** a Cancelled bundle by its beneficiary: Claimed, once; only claimed
  certificates count in the beneficiary's hourly matching;
* **withdraw** an Active bundle (an issuing error): Withdrawn, never usable again.

These functions are pure: they take bundles and return a :class:`Change` (rows to
update, rows to add, the action log) that the hub's ledger writes in one transaction.
:func:`ledger_problems` checks the invariants: live bundles of a device never overlap, and
every certificate id lies in exactly one live bundle.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

STATUSES = ("Active", "Cancelled", "Claimed", "Expired", "Withdrawn", "Locked", "Reserved", "Bundle Split")
MAX_INTERVAL_S = 3600
GC_SCHEMA = "kwhub.gc/1"


class CertificateError(ValueError):
    """An action the ledger refuses; the message names the bundle and the rule."""


class GcAttributes(BaseModel):
    """What a granular certificate must carry (EnergyTag GC Scheme Standard), besides its id and interval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    energy_carrier: str = "electricity"
    energy_source: str  # e.g. solar, wind, nuclear
    technology: str  # e.g. photovoltaic, battery storage
    device_name: str
    device_id: str
    device_capacity_kw: float = Field(ge=0)
    commissioning_date: str = ""
    latitude: float | None = None
    longitude: float | None = None
    region: str  # the grid region (bidding zone, eGRID subregion) of issuance
    country: str = "US"
    issuer: str
    is_storage: bool = False
    is_disclosure: bool = True  # a disclosure certificate (false: for another scheme's purposes)
    carrier_conversion: bool = False
    configuration: int = Field(default=1, ge=1, le=3)
    emissions_factor_kg_per_mwh: float = 0.0


@dataclass(frozen=True)
class Bundle:
    """A bundle of certificates ``range_start .. range_end`` (inclusive), 1 Wh each."""

    bundle_id: str
    issuance_id: str
    device_id: str
    range_start: int
    range_end: int
    production_start: int  # epoch s
    production_end: int
    issued_at: datetime
    attributes: GcAttributes
    account: str
    status: str = "Active"
    beneficiary: str | None = None
    consumption_hour: int | None = None
    parent_id: str | None = None

    @property
    def quantity_wh(self) -> int:
        return self.range_end - self.range_start + 1

    @property
    def live(self) -> bool:
        return self.status != "Bundle Split"

    def digest(self) -> str:
        """SHA-256 over the certificates' identity, interval and attributes (not holder or status)."""
        data = {"issuance": self.issuance_id, "device": self.device_id, "range": [self.range_start, self.range_end],
                "interval": [self.production_start, self.production_end], "attributes": self.attributes.model_dump()}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def as_json(self) -> dict[str, object]:
        """The documented export form (one bundle of ``kwhub.gc/1``)."""
        return {"bundle_id": self.bundle_id, "issuance_id": self.issuance_id, "device_id": self.device_id,
                "certificate_bundle_id_range_start": self.range_start,
                "certificate_bundle_id_range_end": self.range_end, "bundle_quantity": self.quantity_wh,
                "face_value_wh": 1, "production_starting_interval": self.production_start,
                "production_ending_interval": self.production_end, "issuance_timestamp": self.issued_at.isoformat(),
                "attributes": self.attributes.model_dump(), "account": self.account, "status": self.status,
                "beneficiary": self.beneficiary, "consumption_hour": self.consumption_hour,
                "parent_id": self.parent_id, "hash": self.digest()}


@dataclass(frozen=True)
class Action:
    """One entry of the action log."""

    action: str
    bundle_id: str
    quantity_wh: int
    from_account: str = ""
    to_account: str = ""
    actor: str = ""
    reason: str = ""


@dataclass
class Change:
    """What an action does: bundles whose row changes, bundles added, the log."""

    updated: list[Bundle] = field(default_factory=list)
    added: list[Bundle] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)

    def __iadd__(self, other: Change) -> Change:
        self.updated += other.updated
        self.added += other.added
        self.actions += other.actions
        return self


def issue(attributes: GcAttributes, account: str, starts: Sequence[int], wh: Sequence[int], interval_s: int,
          first_id: int, issued_at: datetime) -> tuple[list[Bundle], Change]:
    """One bundle per production interval with energy: ``wh[i]`` whole Wh (rounded down by the caller).

    Certificate ids continue from ``first_id`` (the device's next unused id).
    """
    if not 0 < interval_s <= MAX_INTERVAL_S:
        raise CertificateError(f"a granular certificate covers at most one hour, not {interval_s} s")
    out: list[Bundle] = []
    change = Change()
    nxt = first_id
    for start, q in zip(starts, wh, strict=True):
        if q < 0:
            raise CertificateError(f"{attributes.device_id}: negative production {q} Wh in the interval starting {start}")
        if q == 0:
            continue
        iid = f"{attributes.device_id}:{start}"
        b = Bundle(bundle_id=f"gc:{attributes.device_id}:{nxt}", issuance_id=iid, device_id=attributes.device_id,
                   range_start=nxt, range_end=nxt + q - 1, production_start=int(start),
                   production_end=int(start) + interval_s, issued_at=issued_at, attributes=attributes,
                   account=account)
        out.append(b)
        change.added.append(b)
        change.actions.append(Action("issue", b.bundle_id, q, to_account=account, actor=attributes.issuer))
        nxt += q
    return out, change


def split(bundle: Bundle, quantity_wh: int) -> tuple[Bundle, Bundle, Change]:
    """Split ``bundle``: the first ``quantity_wh`` certificates and the rest (parent: Bundle Split)."""
    if not 0 < quantity_wh < bundle.quantity_wh:
        raise CertificateError(f"bundle {bundle.bundle_id}: cannot split {quantity_wh} Wh of {bundle.quantity_wh}")
    cut = bundle.range_start + quantity_wh
    first = replace(bundle, bundle_id=f"gc:{bundle.device_id}:{bundle.range_start}:{cut - 1}", range_end=cut - 1,
                    parent_id=bundle.bundle_id)
    rest = replace(bundle, bundle_id=f"gc:{bundle.device_id}:{cut}:{bundle.range_end}", range_start=cut,
                   parent_id=bundle.bundle_id)
    parent = replace(bundle, status="Bundle Split")
    return first, rest, Change(updated=[parent], added=[first, rest],
                               actions=[Action("split", bundle.bundle_id, quantity_wh, reason=f"into {first.bundle_id} "
                                               f"and {rest.bundle_id}")])


def _part(bundle: Bundle, quantity_wh: int | None) -> tuple[Bundle, Change]:
    """The part of ``bundle`` to act on (splitting when it is a part)."""
    if quantity_wh is None or quantity_wh == bundle.quantity_wh:
        return bundle, Change()
    first, _rest, change = split(bundle, quantity_wh)
    return first, change


def _require(bundle: Bundle, status: str, what: str) -> None:
    if bundle.status != status:
        raise CertificateError(f"bundle {bundle.bundle_id} is {bundle.status}: only {status} bundles can be {what}")


def transfer(bundle: Bundle, to_account: str, quantity_wh: int | None = None, actor: str = "") -> tuple[Bundle, Change]:
    """Move (part of) an Active bundle to ``to_account``."""
    _require(bundle, "Active", "transferred")
    if to_account == bundle.account:
        raise CertificateError(f"bundle {bundle.bundle_id} is already held by {to_account}")
    part, change = _part(bundle, quantity_wh)
    moved = replace(part, account=to_account)
    _put(change, part, moved)
    change.actions.append(Action("transfer", moved.bundle_id, moved.quantity_wh, bundle.account, to_account, actor))
    return moved, change


def cancel(bundle: Bundle, beneficiary: str, consumption_hour: int, quantity_wh: int | None = None,
           actor: str = "") -> tuple[Bundle, Change]:
    """Cancel (part of) an Active bundle for ``beneficiary``'s consumption in the hour starting ``consumption_hour``.

    Hourly matching: the production interval must lie in that same hour.
    """
    _require(bundle, "Active", "cancelled")
    hour = consumption_hour - consumption_hour % MAX_INTERVAL_S
    if not (hour <= bundle.production_start and bundle.production_end <= hour + MAX_INTERVAL_S):
        raise CertificateError(f"bundle {bundle.bundle_id} was produced {bundle.production_start}.."
                               f"{bundle.production_end}, outside the consumption hour starting {hour}")
    part, change = _part(bundle, quantity_wh)
    done = replace(part, status="Cancelled", beneficiary=beneficiary, consumption_hour=hour)
    _put(change, part, done)
    change.actions.append(Action("cancel", done.bundle_id, done.quantity_wh, bundle.account, beneficiary, actor))
    return done, change


def claim(bundle: Bundle, beneficiary: str, actor: str = "") -> tuple[Bundle, Change]:
    """Claim a Cancelled bundle for its beneficiary (once)."""
    if bundle.status == "Claimed":
        raise CertificateError(f"bundle {bundle.bundle_id} was already claimed by {bundle.beneficiary}: a "
                               "certificate is claimed once")
    _require(bundle, "Cancelled", "claimed")
    if bundle.beneficiary != beneficiary:
        raise CertificateError(f"bundle {bundle.bundle_id} was cancelled for {bundle.beneficiary}, not {beneficiary}")
    done = replace(bundle, status="Claimed")
    change = Change(updated=[done], actions=[Action("claim", done.bundle_id, done.quantity_wh,
                                                    to_account=beneficiary, actor=actor)])
    return done, change


def withdraw(bundle: Bundle, reason: str, quantity_wh: int | None = None, actor: str = "") -> tuple[Bundle, Change]:
    """Withdraw (part of) an Active bundle (issued in error); it can never be used again."""
    if not reason.strip():
        raise CertificateError("a withdrawal needs a reason")
    _require(bundle, "Active", "withdrawn")
    part, change = _part(bundle, quantity_wh)
    done = replace(part, status="Withdrawn")
    _put(change, part, done)
    change.actions.append(Action("withdraw", done.bundle_id, done.quantity_wh, bundle.account, actor=actor,
                                 reason=reason))
    return done, change


def _put(change: Change, old: Bundle, new: Bundle) -> None:
    """Record ``new`` as the state of ``old`` (a child just added, or an existing row)."""
    for i, b in enumerate(change.added):
        if b.bundle_id == old.bundle_id:
            change.added[i] = new
            return
    change.updated.append(new)


def ledger_problems(bundles: Iterable[Bundle], issued: dict[str, list[tuple[int, int]]] | None = None) -> list[str]:
    """Broken invariants: overlapping live bundles of a device; issued ids not in exactly one live bundle."""
    problems = []
    by_device: dict[str, list[Bundle]] = {}
    for b in bundles:
        if b.live:
            by_device.setdefault(b.device_id, []).append(b)
    for device, live in by_device.items():
        live.sort(key=lambda b: b.range_start)
        for a, b in zip(live, live[1:], strict=False):
            if b.range_start <= a.range_end:
                problems.append(f"{device}: bundles {a.bundle_id} and {b.bundle_id} overlap (ids {b.range_start}.."
                                f"{min(a.range_end, b.range_end)}): those certificates would count twice")
        if issued is not None:
            covered = sum(b.quantity_wh for b in live)
            total = sum(e - s + 1 for s, e in issued.get(device, []))
            if covered != total:
                problems.append(f"{device}: live bundles hold {covered} Wh, {total} Wh were issued")
    return problems


def bundle_from_json(data: dict[str, object], where: str) -> Bundle:
    """A bundle of the export form; errors name ``where`` and the field."""
    try:
        attrs = GcAttributes.model_validate(data["attributes"])
        start = int(data["certificate_bundle_id_range_start"])  # type: ignore[call-overload]
        end = int(data["certificate_bundle_id_range_end"])  # type: ignore[call-overload]
        p0 = int(data["production_starting_interval"])  # type: ignore[call-overload]
        p1 = int(data["production_ending_interval"])  # type: ignore[call-overload]
        issued_at = datetime.fromisoformat(str(data["issuance_timestamp"]))
        device = str(data["device_id"])
    except KeyError as exc:
        raise CertificateError(f"{where}: field {exc.args[0]} is missing") from None
    except (TypeError, ValueError) as exc:
        raise CertificateError(f"{where}: {exc}") from None
    if end < start:
        raise CertificateError(f"{where}: certificate_bundle_id_range_end {end} is before the start {start}")
    if not 0 < p1 - p0 <= MAX_INTERVAL_S:
        raise CertificateError(f"{where}: production interval {p0}..{p1} is not (0, 1 hour]")
    if int(data.get("bundle_quantity", end - start + 1)) != end - start + 1:  # type: ignore[call-overload]
        raise CertificateError(f"{where}: bundle_quantity {data.get('bundle_quantity')} does not match the id range")
    if device != attrs.device_id:
        raise CertificateError(f"{where}: device_id {device!r} differs from attributes.device_id {attrs.device_id!r}")
    status = str(data.get("status", "Active"))
    if status not in STATUSES:
        raise CertificateError(f"{where}: status {status!r} is not one of {', '.join(STATUSES)}")
    b = Bundle(bundle_id=str(data.get("bundle_id") or f"gc:{device}:{start}"), issuance_id=str(data.get("issuance_id") or f"{device}:{p0}"),
               device_id=device, range_start=start, range_end=end, production_start=p0, production_end=p1,
               issued_at=issued_at, attributes=attrs, account=str(data.get("account") or ""), status=status)
    given = data.get("hash")
    if given and given != b.digest():
        raise CertificateError(f"{where}: hash {given} does not match the bundle's content ({b.digest()})")
    return b
