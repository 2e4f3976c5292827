"""Each ISO's market rules as data, and the registry a plugin adds its ISO to.

kwhub ships the rules of ERCOT, CAISO and PJM; an adapter for another ISO (MISO, NYISO,
ISO-NE, SPP ...) registers its own :class:`MarketRules` before its bids, awards, prices or
statements are built, typically in its plugin hook::

    from kwhub.core.markets.curve_rules import CurveRules
    from kwhub.core.markets.rules import MarketRules, register_market_rules

    NYISO = MarketRules(
        iso="NYISO", timezone="America/New_York", rt_minutes=5, hour_label="hour_beginning",
        da=CurveRules(iso="NYISO", floor=Decimal("-1000"), cap=Decimal("1000"), max_points=12),
        rt=CurveRules(iso="NYISO", floor=Decimal("-1000"), cap=Decimal("1000"), max_points=12),
        da_gate="05:00", rt_gate_minutes=75)

    @hookimpl
    def kwhub_register_market_adapters(register):
        register_market_rules(NYISO)
        register(NyisoMarket)

From then on the ISO's name is valid in every market model (``Bid.iso``, ``Award.iso``,
``[[markets.resources]] iso`` ...), its curves are checked against its caps, floor and point
count (:func:`rules_for`), its operating day is laid out in its time zone, and the scheduler
takes its gate times as defaults. An ISO without registered rules is refused wherever it is
named, with the list of the ISOs that are known.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from kwhub.core.markets.curve_rules import (
    CAISO_DA,
    CAISO_RT,
    ERCOT_DA,
    ERCOT_RT,
    PJM_DA,
    PJM_RT,
    CurveRules,
)
from kwhub.core.markets.hour_labels import DayGrid

_NAME = re.compile(r"^[A-Z][A-Z0-9_]{1,15}$")  # upper case; the market tables keep 16 characters


class MarketRulesError(ValueError):
    """Rules that cannot be registered, or an ISO without rules."""


class MarketRules(BaseModel):
    """The rules of one ISO that kwhub needs to bid, label and settle in it.

    * ``timezone``: the zone of its operating day (IANA name); the default zone of its adapter;
    * ``da`` / ``rt``: the curve rules of its day-ahead and real-time offers (floor, cap,
      number of points, decimals, equal runs, interval length);
    * ``rt_minutes``: its real-time settlement grain (ERCOT 15, CAISO and PJM 5);
    * ``hour_label``: how it labels hours: ``hour_ending`` (``HE01`` = 00:00-01:00) or
      ``hour_beginning`` (``HB00``); the repeated hour of the fall-back day is marked either way;
    * ``da_gate`` (``HH:MM``, its local time the day before) and ``rt_gate_minutes``: defaults
      for the scheduler when ``[markets.schedule]`` does not name the ISO.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    iso: str
    timezone: str
    da: CurveRules
    rt: CurveRules
    rt_minutes: int
    hour_label: Literal["hour_ending", "hour_beginning"] = "hour_ending"
    da_gate: str | None = None
    rt_gate_minutes: int | None = None
    note: str = ""

    @field_validator("iso")
    @classmethod
    def _iso(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"iso {v!r} must be 2-16 upper-case letters, digits or _ starting with a letter "
                             "(e.g. MISO, NYISO, ISO_NE)")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {v!r} is not an IANA time zone (e.g. America/New_York)") from None
        return v

    @field_validator("rt_minutes")
    @classmethod
    def _grain(cls, v: int) -> int:
        if v <= 0 or 60 % v:
            raise ValueError(f"rt_minutes {v} must divide the hour (5, 15, 60 ...)")
        return v

    @field_validator("da_gate")
    @classmethod
    def _gate(cls, v: str | None) -> str | None:
        if v is not None:
            m = re.fullmatch(r"(\d\d):(\d\d)", v)
            if not m or int(m[1]) > 23 or int(m[2]) > 59:
                raise ValueError(f"da_gate {v!r} must be HH:MM (24-hour local time of the ISO)")
        return v

    @model_validator(mode="after")
    def _same_iso(self) -> MarketRules:
        for name in ("da", "rt"):
            cr: CurveRules = getattr(self, name)
            if cr.iso != self.iso:
                raise ValueError(f"{name} curve rules say iso {cr.iso!r}, not {self.iso!r}")
        if self.da.interval_minutes != 60:
            raise ValueError(f"day-ahead curves cover hours: da.interval_minutes is {self.da.interval_minutes}")
        return self

    def curves(self, market: str) -> CurveRules:
        """The curve rules of ``market`` (``DA`` or ``RT``)."""
        if market not in ("DA", "RT"):
            raise MarketRulesError(f"market {market!r} is not DA or RT")
        return self.da if market == "DA" else self.rt

    def interval_label(self, grid: DayGrid, i: int) -> str:
        """Interval ``i`` of ``grid`` as the ISO labels it: ``HE02`` / ``HB01`` (``.k`` for the
        k-th sub-hourly interval), `` DST`` for the repeated hour of the fall-back day."""
        he = int(grid.hour_ending[i])
        text = f"HE{he:02d}" if self.hour_label == "hour_ending" else f"HB{he - 1:02d}"
        if grid.minutes < 60:
            text += f".{int(grid.interval_in_hour[i])}"
        return text + (" DST" if grid.repeated[i] else "")


BUILTIN: tuple[MarketRules, ...] = (
    MarketRules(iso="ERCOT", timezone="America/Chicago", da=ERCOT_DA, rt=ERCOT_RT, rt_minutes=15,
                da_gate="10:00", rt_gate_minutes=60, note="Nodal Protocols 4.4.9.x, 4.4.11 (MARKETS.md section 5)"),
    MarketRules(iso="CAISO", timezone="America/Los_Angeles", da=CAISO_DA, rt=CAISO_RT, rt_minutes=5,
                da_gate="10:00", rt_gate_minutes=75, note="floor and point count unverified (MARKETS.md section 6)"),
    MarketRules(iso="PJM", timezone="America/New_York", da=PJM_DA, rt=PJM_RT, rt_minutes=5,
                da_gate="10:30", rt_gate_minutes=65,
                note="Markets Gateway hours end, Data Miner stamps begin; segment count unverified "
                     "(MARKETS.md section 7)"),
)

_lock = threading.Lock()
_RULES: dict[str, MarketRules] = {r.iso: r for r in BUILTIN}


def register_market_rules(rules: MarketRules, *, replace: bool = False) -> MarketRules:
    """Add an ISO's rules (registering equal rules again is a no-op).

    Other rules for an ISO already known are refused unless ``replace`` is true (a plugin that
    tightens a built-in ISO's caps says so explicitly).
    """
    if not isinstance(rules, MarketRules):
        raise MarketRulesError(f"register_market_rules() takes a MarketRules, not {type(rules).__name__}")
    with _lock:
        known = _RULES.get(rules.iso)
        if known is not None and known != rules and not replace:
            raise MarketRulesError(f"{rules.iso} already has other market rules; pass replace=True to replace them")
        _RULES[rules.iso] = rules
    return rules


def unregister_market_rules(iso: str) -> None:
    """Forget a registered ISO (tests; the built-in ones are restored, not removed)."""
    with _lock:
        builtin = {r.iso: r for r in BUILTIN}
        if iso in builtin:
            _RULES[iso] = builtin[iso]
        else:
            _RULES.pop(iso, None)


def known_isos() -> list[str]:
    """Every ISO with rules: the built-in ones first, then the registered ones by name."""
    builtin = [r.iso for r in BUILTIN]
    return builtin + sorted(set(_RULES) - set(builtin))


def market_rules(iso: str) -> MarketRules:
    """The rules of ``iso``; :class:`MarketRulesError` naming the known ISOs when it has none."""
    try:
        return _RULES[iso]
    except KeyError:
        raise MarketRulesError(f"no market rules for ISO {iso!r} (known: {', '.join(known_isos())}); an adapter "
                               "for another ISO registers them with kwhub.core.markets.rules."
                               "register_market_rules") from None


def rules_for(iso: str, market: str) -> CurveRules:
    """The curve rules of ``iso``'s ``market`` (``DA`` or ``RT``)."""
    return market_rules(iso).curves(market)


def check_iso(iso: str) -> str:
    """``iso`` when it has rules (the validator of every model's ``iso`` field)."""
    market_rules(iso)
    return iso


def all_rules() -> Iterable[MarketRules]:
    return [_RULES[i] for i in known_isos()]
