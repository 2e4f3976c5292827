"""Templates and the number, money and time formats every page uses.

Numbers are formatted here and right-aligned by the stylesheet (``td.num``); each carries
its unit. Times are shown in the hub's time zone with its abbreviation, and the zone's
name is in every page's footer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"
NAV = [  # (path, label, scope needed to see the link)
    ("/ui/campus", "Campus now", "campus:read"),
    ("/ui/runs", "Settlement runs", "runs:read"),
    ("/ui/invoices", "Invoices", "invoices:read"),
    ("/ui/deliveries", "Deliveries", "outbox:read"),
    ("/ui/quality", "Data quality", "vee:read"),
    ("/ui/owners", "Owners", "reports:read"),
    ("/ui/emissions", "Emissions", "reports:read"),
    ("/ui/markets", "Markets", "markets:read"),
    ("/ui/jobs", "Jobs", "jobs:read"),
    ("/ui/audit", "Audit log", "audit:read"),
    ("/ui/keys", "API keys", "keys:write"),
]


SECURITY_HEADERS = {  # scripts only from this server, no framing, no sniffing (charts set inline styles)
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def number(value: Any, places: int = 0) -> str:
    """``1234.5`` -> ``1,234.50`` (places 2); empty or unparsable values -> an em dash."""
    if value is None or value == "":
        return "—"
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not d.is_finite():
        return "—"
    return f"{d:,.{places}f}"


def money(value: Any, currency: str = "") -> str:
    """An exact decimal amount with thousands separators and its currency (never rounded)."""
    if value is None or value == "":
        return "—"
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return f"{value} {currency}".strip()
    return f"{d:,} {currency}".strip()


# determinant name endings -> the unit shown beside the value ("{cur}" is the invoice's currency)
_UNITS = (("_per_kw_month", "{cur}/kW-month"), ("_per_mwh", "{cur}/MWh"), ("_per_kwh", "{cur}/kWh"),
          ("_per_kw", "{cur}/kW"), ("_kwh", "kWh"), ("_mwh", "MWh"), ("_kw", "kW"), ("_mw", "MW"), ("_pct", "%"),
          ("_tco2e", "t CO2e"), ("_kg", "kg"), ("_mmbtu", "MMBtu"), ("_hours", "h"), ("_minutes", "min"),
          ("minutes", "min"), ("_days", "days"), ("days", "days"), ("intervals", "intervals"), ("_amount", "{cur}"),
          ("amount", "{cur}"), ("total", "{cur}"), ("share", "(share)"), ("ratio", "(ratio)"))


def determinant(key: str, value: Any, currency: str = "") -> str:
    """A numeric determinant with its unit, named by the key's ending (``energy_kwh`` -> ``297,600.0 kWh``);
    empty when ``value`` is not a number (the page shows it as text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)) \
            or key.endswith(("year", "version", "_id", "seq", "code", "number")):
        return ""  # names and numbering, not quantities
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return ""
    if not d.is_finite():
        return ""
    unit = next((u for end, u in _UNITS if key.endswith(end)), "")
    text = f"{d:,}" if d == d.to_integral_value() and "." not in str(value) else f"{d:,f}"
    return f"{text} {unit.format(cur=currency)}".strip()


class Clock:
    """Formats instants in the hub's time zone."""

    def __init__(self, tz_name: str) -> None:
        self.name = tz_name
        self.zone = ZoneInfo(tz_name)

    def __call__(self, value: Any) -> str:
        if value is None or value == "":
            return "—"
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return value
        if not isinstance(value, datetime):
            return str(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        local = value.astimezone(self.zone)
        return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or self.name)


_ENV = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)
_ENV.filters["number"] = number
_ENV.filters["money"] = money
_ENV.globals["determinant"] = determinant


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the viewer, navigation and time zone every page shows."""
    hub = request.app.state.hub
    tz = hub.config.hub.timezone
    who = context.get("who")
    nav = [(p, label) for p, label, sc in NAV if who is not None and sc in who.principal.scopes
           and not (p == "/ui/markets" and who.principal.party is not None)]  # campus-wide data
    html = _ENV.get_template(template).render(
        request=request, nav=nav, path=request.url.path, hub_name=hub.config.hub.name, tz=tz,
        at=Clock(tz), **context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
