"""Which tax category a contract's lines carry, and what EN 16931 asks of each.

UNCL 5305 codes kwhub writes: ``S`` standard rated (a rate above zero, BR-S-05), ``Z`` zero
rated (rate 0, no exemption reason, BR-Z-05/BR-Z-10), ``E`` exempt, ``O`` outside the scope
of the tax, ``AE`` reverse charge, ``K`` intra-community supply and ``G`` export (rate 0 and an
exemption reason, text or VATEX code: BR-E-10, BR-O-10, BR-AE-10, BR-IC-10, BR-G-10).
A contract that names no category gets ``S`` when it has a rate and ``Z`` when it has none.
"""

from __future__ import annotations

from decimal import Decimal

TAX_CATEGORIES = {"S": "standard rated", "Z": "zero rated", "E": "exempt", "O": "outside the scope of tax",
                  "AE": "reverse charge", "K": "intra-community supply", "G": "export"}
NEEDS_EXEMPTION_REASON = frozenset({"E", "O", "AE", "K", "G"})


def default_category(percent: Decimal) -> str:
    """``S`` for a rate above zero, ``Z`` for none."""
    return "S" if percent > 0 else "Z"


def legacy_tax_key(category: str, percent: Decimal) -> str:
    """The category as run keys and terms hashes record it: ``Z`` at 0 % as ``S``.

    kwhub wrote zero tax as ``S`` at 0 % before it refused that; the two bill the same, so a
    settled period re-run under ``Z`` matches its old lines and terms instead of reversing them.
    """
    return "S" if category == "Z" and percent == 0 else category


def tax_problems(category: str, percent: Decimal, reason: str = "", code: str = "") -> list[str]:
    """What is wrong with these tax terms (empty when they can be invoiced); each names the field and the fix."""
    if category not in TAX_CATEGORIES:
        known = ", ".join(f"{k} ({v})" for k, v in TAX_CATEGORIES.items())
        return [f"tax_category: {category!r} is not one of {known}"]
    out = []
    if category == "S" and percent <= 0:
        out.append("tax_category: S (standard rated) needs tax_percent above 0 (EN 16931 BR-S-05); for no tax "
                   "use Z (zero rated), or E (exempt) with tax_exemption_reason")
    if category != "S" and percent != 0:
        out.append(f"tax_percent: must be 0 for tax_category {category} ({TAX_CATEGORIES[category]}); "
                   "a rate above 0 is category S")
    if category in NEEDS_EXEMPTION_REASON and not (reason.strip() or code.strip()):
        out.append(f"tax_exemption_reason: required for tax_category {category} ({TAX_CATEGORIES[category]}), "
                   "e.g. \"Exempt supply of electricity\" (or tax_exemption_code, a VATEX code; EN 16931 "
                   f"BR-{'IC' if category == 'K' else category}-10)")
    if category not in NEEDS_EXEMPTION_REASON and (reason or code):
        out.append(f"tax_exemption_reason: not allowed for tax_category {category} (EN 16931 BR-{category}-10); "
                   "remove it or use E (exempt)")
    return out
