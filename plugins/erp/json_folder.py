"""Canonical JSON of a format-neutral invoice, and an atomic writer to a folder.

The JSON is the :class:`~kwhub.core.invoice.Invoice` itself: keys sorted, every Decimal as an
exact plain decimal string (``"1234.50"``, never a float or ``1E+2``), dates as ISO
strings. ``Invoice.model_validate_json`` reads it back to an equal invoice. Delivery to a
folder in production is the folder-drop transport's job; :func:`write_invoice_json` is
the small direct writer the demo uses.
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError

from kwhub.core.adapters import InvoiceRenderer
from kwhub.core.hookspecs import hookimpl
from kwhub.core.invoice import Invoice, check_totals
from kwhub.core.money import money_str
from kwhub.core.render_context import RenderContext
from kwhub.hub.helpers.files import atomic_write

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MONEY_FIELDS = {"line_total", "tax_total", "total", "amount", "unit_price", "quantity",
                 "tax_percent", "taxable_amount", "tax_amount", "percent"}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return money_str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def invoice_to_dict(invoice: Invoice) -> dict[str, Any]:
    """The invoice as JSON-ready data with Decimals as exact strings."""
    return _plain(invoice.model_dump(mode="python"))


def invoice_json(invoice: Invoice) -> bytes:
    """Canonical JSON bytes (UTF-8, sorted keys, 2-space indent, trailing newline)."""
    text = json.dumps(invoice_to_dict(invoice), sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def invoice_from_json(data: bytes | str) -> Invoice:
    """Read canonical JSON back into an :class:`Invoice`."""
    return Invoice.model_validate_json(data)


def _money_as_floats(obj: Any, path: str = "$") -> list[str]:
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in _MONEY_FIELDS and isinstance(v, float | int) and not isinstance(v, bool):
                out.append(f"{path}.{k}: a number, must be a decimal string")
            out.extend(_money_as_floats(v, f"{path}.{k}"))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(_money_as_floats(v, f"{path}[{i}]"))
    return out


class JsonRenderer(InvoiceRenderer):
    """Canonical kwhub invoice JSON (exact decimal strings, stable key order)."""

    type_id: ClassVar[str] = "erp.json"
    title: ClassVar[str] = "kwhub invoice JSON"
    format_id: ClassVar[str] = "json"
    media_type: ClassVar[str] = "application/json"
    file_extension: ClassVar[str] = ".json"
    capabilities: ClassVar[frozenset[str]] = frozenset({"render", "validate"})

    def render(self, invoice: Invoice, context: RenderContext | None = None) -> bytes:
        return invoice_json(invoice)

    def validate(self, data: bytes) -> list[str]:
        """Schema (pydantic), money-as-strings and totals arithmetic."""
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            return [f"JSON: not valid JSON: {exc}"]
        problems = _money_as_floats(raw)
        try:
            inv = Invoice.model_validate(raw)
        except ValidationError as exc:
            return problems + [f"JSON {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        problems += [f"JSON totals: {p}" for p in check_totals(inv)]
        if inv.kind in ("credit_note", "adjustment") and not inv.references:
            problems.append(f"JSON references: a {inv.kind} must reference the original invoice")
        return problems


def invoice_filename(invoice: Invoice, extension: str = ".json") -> str:
    """``<number>_v<version>.json`` with unsafe characters replaced."""
    stem = _SAFE.sub("_", f"{invoice.number}_v{invoice.version}").strip("._") or "invoice"
    return stem + extension


def write_invoice_json(invoice: Invoice, folder: Path | str) -> Path:
    """Write the canonical JSON into ``folder`` atomically and return its path.

    The bytes go to a temporary file in the same folder, are flushed and fsynced, then
    renamed over the target with :func:`os.replace`, so a reader never sees half a file.
    """
    return atomic_write(Path(folder) / invoice_filename(invoice), invoice_json(invoice), fsync=True)


@hookimpl
def kwhub_register_erp_adapters(register: Any) -> None:
    register(JsonRenderer)
