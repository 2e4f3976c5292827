"""The ISO charge codes kwhub recomputes, with their formulas (``MARKETS.md`` section 9).

Each :class:`ChargeCode` names its ISO, grain and formula. The formulas themselves are in
:mod:`kwhub.core.markets.shadow`, vectorised over resources and intervals; the ``formula`` text
here is what reports and ``explain`` print. Signs are the ISO's: a negative amount is
paid to the participant. Codes whose formula ``MARKETS.md`` marks unverified say so in
``note``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChargeCode:
    """One charge code: where it belongs, its grain and its formula."""

    iso: str
    code: str
    description: str
    minutes: int
    formula: str
    formula_id: str
    note: str = ""


CHARGE_CODES: dict[tuple[str, str], ChargeCode] = {
    (c.iso, c.code): c
    for c in (
        ChargeCode("ERCOT", "DAESAMT", "Day-ahead energy sale", 60, "(-1) x DASPP x DAES", "ercot.daesamt.v1"),
        ChargeCode("ERCOT", "DAEPAMT", "Day-ahead energy purchase", 60, "DASPP x DAEP", "ercot.daepamt.v1"),
        ChargeCode("ERCOT", "RTEIAMT", "Real-time energy imbalance at a resource node", 15,
                   "(-1) x RTSPP x [RTMG - 1/4 x (DAES - DAEP) - 1/4 x (RTQQES - RTQQEP)]", "ercot.rteiamt.v1",
                   note="bracket and RTQQES/RTQQEP names unverified (Protocols 6.6.3.1)"),
        ChargeCode("CAISO", "6011", "Day-ahead energy, congestion and loss", 60,
                   "(DA purchase - DA sale) x DA LMP", "caiso.6011.v1", note="sign convention unverified"),
        ChargeCode("CAISO", "6460", "FMM instructed imbalance energy", 15,
                   "-(FMM schedule - 1/4 x DA schedule) x FMM LMP", "caiso.6460.v1", note="unverified"),
        ChargeCode("CAISO", "6470", "RTD instructed imbalance energy", 5,
                   "-(RTD dispatch - 1/3 x FMM schedule) x RTD LMP", "caiso.6470.v1", note="unverified"),
        ChargeCode("CAISO", "6475", "Real-time uninstructed imbalance energy", 5,
                   "-(meter - expected energy) x RTD LMP", "caiso.6475.v1", note="unverified"),
        ChargeCode("PJM", "1200", "Day-ahead spot market energy", 60,
                   "(DA withdrawal - DA injection) x DA system energy price", "pjm.1200.v1"),
        ChargeCode("PJM", "1205", "Balancing spot market energy", 5,
                   "(RT net withdrawal - 1/12 x DA net withdrawal) x RT system energy price", "pjm.1205.v1",
                   note="balancing formula unverified"),
    )
}


def codes_of(iso: str) -> list[ChargeCode]:
    """The charge codes kwhub shadow-settles for ``iso``, in statement order."""
    return [c for (i, _), c in CHARGE_CODES.items() if i == iso]


def charge_code(iso: str, code: str) -> ChargeCode:
    """One charge code; ``KeyError`` names the codes kwhub knows for the ISO."""
    try:
        return CHARGE_CODES[(iso, code)]
    except KeyError:
        known = ", ".join(c.code for c in codes_of(iso)) or "none"
        raise KeyError(f"{iso} charge code {code!r} is not one kwhub recomputes (known: {known})") from None
