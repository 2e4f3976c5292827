"""Shadow settlement: the ISO's energy charges recomputed from kwhub's own data.

:class:`ShadowInputs` holds, for R resources over a span of whole hours, dense ``(R, N)``
int64 arrays: day-ahead awards (Wh per hour), the metered delivery at the settlement meter
(Wh per real-time interval), ISO prices (price units, see :mod:`kwhub.core.markets.fixed`) and,
for CAISO, the FMM schedules and RTD dispatch. :func:`shadow_settle` applies each charge
code's formula (:mod:`kwhub.core.markets.charge_codes`) to whole arrays at once and rounds each
interval's amount to the cent, exactly as the ISO rounds it. An interval without a price
or a meter value gets no amount; it is listed in :attr:`CodeLines.missing` with the reason,
never counted as zero.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from kwhub.core.markets.charge_codes import ChargeCode, charge_code, codes_of
from kwhub.core.markets.fixed import amount_cents, cents_decimal, mwh_decimal, price_decimal


class ShadowInputError(ValueError):
    """Inputs that cannot be shadow-settled (shapes, grains)."""


@dataclass
class ShadowInputs:
    """Everything the formulas of one ISO need, for R resources over ``hours`` hours."""

    iso: str
    resources: list[str]
    start_epoch: int  # UTC start of the first hour
    hours: int
    rt_minutes: int  # real-time settlement grain: ERCOT 15, CAISO and PJM 5
    da_sale_wh: np.ndarray  # (R, H) awarded day-ahead sales (offers)
    da_purchase_wh: np.ndarray  # (R, H) awarded day-ahead purchases (bids)
    da_price_u: np.ndarray  # (R, H)
    rt_meter_wh: np.ndarray  # (R, N_rt) metered delivery (positive = injection)
    rt_price_u: np.ndarray  # (R, N_rt)
    da_price_ok: np.ndarray | None = None  # (R, H) bool; None = all present
    rt_price_ok: np.ndarray | None = None
    rt_meter_ok: np.ndarray | None = None
    trade_sale_wh: np.ndarray | None = None  # (R, H) QSE trades (ERCOT RTQQES/RTQQEP)
    trade_purchase_wh: np.ndarray | None = None
    fmm_wh: np.ndarray | None = None  # CAISO (R, 4H) FMM schedule; None = the DA schedule
    fmm_price_u: np.ndarray | None = None  # CAISO (R, 4H)
    rtd_wh: np.ndarray | None = None  # CAISO (R, 12H) RTD dispatch; None = the FMM schedule
    price_versions: dict[str, int] = field(default_factory=dict)  # "node/market" -> version used

    def __post_init__(self) -> None:
        r, h = len(self.resources), self.hours
        n_rt = h * 60 // self.rt_minutes
        want = {"da_sale_wh": (r, h), "da_purchase_wh": (r, h), "da_price_u": (r, h),
                "rt_meter_wh": (r, n_rt), "rt_price_u": (r, n_rt)}
        for name, shape in want.items():
            arr = np.asarray(getattr(self, name), dtype=np.int64)
            if arr.shape != shape:
                raise ShadowInputError(f"{name} has shape {arr.shape}, expected {shape} "
                                       f"({r} resources x {h} hours at {self.rt_minutes}-minute real time)")
            setattr(self, name, arr)
        n_q = h * 4
        optional = {"fmm_wh": (r, n_q), "fmm_price_u": (r, n_q), "rtd_wh": (r, n_rt), "trade_sale_wh": (r, h),
                    "trade_purchase_wh": (r, h), "da_price_ok": (r, h), "rt_price_ok": (r, n_rt),
                    "rt_meter_ok": (r, n_rt)}
        for name, shape in optional.items():
            arr = getattr(self, name)
            if arr is not None and np.shape(arr) != shape:
                raise ShadowInputError(f"{name} has shape {np.shape(arr)}, expected {shape}")

    def starts(self, minutes: int) -> np.ndarray:
        """UTC starts of the span's intervals of ``minutes``."""
        return self.start_epoch + minutes * 60 * np.arange(self.hours * 60 // minutes, dtype=np.int64)

    def digest(self) -> str:
        """SHA-256 of every input array: equal inputs, equal digest (recorded with each run)."""
        h = hashlib.sha256(f"{self.iso}|{','.join(self.resources)}|{self.start_epoch}|{self.hours}|"
                           f"{self.rt_minutes}".encode())
        for name in ("da_sale_wh", "da_purchase_wh", "da_price_u", "rt_meter_wh", "rt_price_u", "da_price_ok",
                     "rt_price_ok", "rt_meter_ok", "trade_sale_wh", "trade_purchase_wh", "fmm_wh", "fmm_price_u",
                     "rtd_wh"):
            arr = getattr(self, name)
            h.update(name.encode())
            if arr is not None:
                h.update(np.ascontiguousarray(arr).data)
        return h.hexdigest()


@dataclass
class CodeLines:
    """One charge code's shadow lines: ``(R, N)`` arrays on the code's grain.

    The quantity of a line is ``qty_num / qty_den`` Wh (a fraction where the formula
    takes 1/4 of an hourly award); ``ok`` is False where an input was missing, and
    ``missing`` says which and why.
    """

    code: ChargeCode
    resources: list[str]
    starts: np.ndarray
    qty_num: np.ndarray
    qty_den: int
    price_u: np.ndarray
    amount_cents: np.ndarray
    ok: np.ndarray
    price_name: str = ""  # the ISO's name of the price determinant (RTSPP, LMP ...)
    quantities: dict[str, np.ndarray] = field(default_factory=dict)  # determinant name -> (R, N) Wh
    missing: list[tuple[str, int, str]] = field(default_factory=list)  # (resource, start, reason)

    def total_cents(self) -> int:
        return int(np.sum(self.amount_cents, where=self.ok))

    def total(self) -> Decimal:
        return cents_decimal(self.total_cents())

    def line(self, r: int, i: int) -> dict[str, object]:
        """One line as exact Decimals (for reports, variance and explain)."""
        return {"code": self.code.code, "resource": self.resources[r], "start": int(self.starts[i]),
                "minutes": self.code.minutes, "quantity_mwh": mwh_decimal(int(self.qty_num[r, i]), self.qty_den),
                "price": price_decimal(int(self.price_u[r, i])), "amount": cents_decimal(int(self.amount_cents[r, i])),
                "formula": self.code.formula, "formula_id": self.code.formula_id, "complete": bool(self.ok[r, i]),
                "determinants": self.determinants(r, i)}

    def determinants(self, r: int, i: int) -> dict[str, Decimal]:
        """The line's billing determinants by their ISO names (MWh and $/MWh)."""
        out = {name: mwh_decimal(int(arr[r, i])) for name, arr in self.quantities.items()}
        if self.price_name:
            out[self.price_name] = price_decimal(int(self.price_u[r, i]))
        return out


@dataclass
class ShadowResult:
    """All codes of one shadow run, and the digest of the inputs it used."""

    iso: str
    codes: dict[str, CodeLines]
    inputs_sha256: str
    price_versions: dict[str, int]

    def totals(self) -> dict[str, Decimal]:
        return {c: lines.total() for c, lines in self.codes.items()}

    def total(self) -> Decimal:
        return sum(self.totals().values(), Decimal("0.00"))


def _rep(a: np.ndarray, k: int) -> np.ndarray:
    return np.repeat(a, k, axis=1)


def _ok(mask: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    """The mask, or a read-only all-True view of ``like``'s shape (no array of millions of Trues)."""
    return np.broadcast_to(np.True_, like.shape) if mask is None else np.asarray(mask, dtype=bool)


def _and(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a & b``, without a pass when one of them is an all-True view from :func:`_ok`."""
    def all_true_view(m: np.ndarray) -> bool:  # every element is the one stored value
        return m.size > 0 and not any(m.strides) and bool(m.flat[0])

    if all_true_view(a) and a.shape == b.shape:
        return b
    if all_true_view(b) and a.shape == b.shape:
        return a
    return a & b


def _lines(code: ChargeCode, inp: ShadowInputs, qty_num: np.ndarray, den: int, price: np.ndarray, sign: int,
           ok: np.ndarray, reasons: list[tuple[np.ndarray, str]], price_name: str,
           quantities: dict[str, np.ndarray]) -> CodeLines:
    complete = bool(ok.all())
    amount = amount_cents(price, qty_num, den, sign, None if complete else ok)
    starts = inp.starts(code.minutes)
    missing: list[tuple[str, int, str]] = []
    if not complete:
        for mask, why in reasons:
            for r, i in zip(*np.nonzero(~mask), strict=True):
                missing.append((inp.resources[int(r)], int(starts[int(i)]), why))
    return CodeLines(code, inp.resources, starts, qty_num, den, price, amount, ok, price_name, quantities, missing)


def _ercot(inp: ShadowInputs) -> dict[str, CodeLines]:
    if inp.rt_minutes != 15:
        raise ShadowInputError(f"ERCOT settles real time on 15-minute intervals, not {inp.rt_minutes}")
    da_ok = _ok(inp.da_price_ok, inp.da_price_u)
    rt_ok = _ok(inp.rt_price_ok, inp.rt_price_u)
    m_ok = _ok(inp.rt_meter_ok, inp.rt_meter_wh)
    zeros = np.zeros_like(inp.da_sale_wh)
    tq = (inp.trade_sale_wh if inp.trade_sale_wh is not None else zeros) - \
        (inp.trade_purchase_wh if inp.trade_purchase_wh is not None else zeros)
    da_net = inp.da_sale_wh - inp.da_purchase_wh
    out = {
        "DAESAMT": _lines(charge_code("ERCOT", "DAESAMT"), inp, inp.da_sale_wh, 1, inp.da_price_u, -1, da_ok,
                          [(da_ok, "no day-ahead SPP")], "DASPP", {"DAES": inp.da_sale_wh}),
        "DAEPAMT": _lines(charge_code("ERCOT", "DAEPAMT"), inp, inp.da_purchase_wh, 1, inp.da_price_u, 1, da_ok,
                          [(da_ok, "no day-ahead SPP")], "DASPP", {"DAEP": inp.da_purchase_wh}),
    }
    qty4 = 4 * inp.rt_meter_wh - _rep(da_net, 4) - _rep(tq, 4)
    ok = _and(rt_ok, m_ok)
    out["RTEIAMT"] = _lines(charge_code("ERCOT", "RTEIAMT"), inp, qty4, 4, inp.rt_price_u, -1, ok,
                            [(rt_ok, "no real-time SPP"), (m_ok, "no metered value")], "RTSPP",
                            {"RTMG": inp.rt_meter_wh, "DAES": _rep(inp.da_sale_wh, 4),
                             "DAEP": _rep(inp.da_purchase_wh, 4)})
    return out


def _caiso(inp: ShadowInputs) -> dict[str, CodeLines]:
    if inp.rt_minutes != 5:
        raise ShadowInputError(f"CAISO settles real-time dispatch on 5-minute intervals, not {inp.rt_minutes}")
    da_ok = _ok(inp.da_price_ok, inp.da_price_u)
    rt_ok = _ok(inp.rt_price_ok, inp.rt_price_u)
    m_ok = _ok(inp.rt_meter_ok, inp.rt_meter_wh)
    da_net = inp.da_sale_wh - inp.da_purchase_wh
    out = {"6011": _lines(charge_code("CAISO", "6011"), inp, -da_net, 1, inp.da_price_u, 1, da_ok,
                          [(da_ok, "no day-ahead LMP")], "DA_LMP", {"DA_SCHEDULE": da_net})}
    r, h = da_net.shape
    fmm4 = 4 * inp.fmm_wh if inp.fmm_wh is not None else _rep(da_net, 4)  # FMM schedule x 4 per quarter
    fmm_price = inp.fmm_price_u if inp.fmm_price_u is not None else np.zeros_like(fmm4)
    fmm_ok = np.ones(fmm4.shape, bool) if inp.fmm_price_u is not None or inp.fmm_wh is None else \
        np.zeros(fmm4.shape, bool)
    # -(FMM x 4 - DA): nothing to settle when the FMM schedule is the DA schedule
    q60 = np.zeros_like(fmm4) if inp.fmm_wh is None else _rep(da_net, 4) - fmm4
    out["6460"] = _lines(charge_code("CAISO", "6460"), inp, q60, 4, fmm_price, 1, fmm_ok,
                         [(fmm_ok, "FMM schedule without an FMM LMP")], "FMM_LMP", {})
    # per 5 minutes, x 12: the FMM schedule (each quarter's value three times) and the RTD dispatch;
    # written straight into (R, quarters, 3) views, no repeated copy of the schedule
    rtd12 = 12 * inp.rtd_wh if inp.rtd_wh is not None else None
    q70 = np.zeros((r, 12 * h), dtype=np.int64)
    if rtd12 is not None:  # -(RTD - FMM)
        np.subtract(fmm4[:, :, None], rtd12.reshape(r, 4 * h, 3), out=q70.reshape(r, 4 * h, 3))
    out["6470"] = _lines(charge_code("CAISO", "6470"), inp, q70, 12, inp.rt_price_u, 1, rt_ok,
                         [(rt_ok, "no RTD LMP")], "RTD_LMP", {})
    q75 = np.multiply(inp.rt_meter_wh, -12)  # -(meter x 12 - RTD x 12)
    if rtd12 is not None:
        q75 += rtd12
    else:
        q75.reshape(r, 4 * h, 3)[...] += fmm4[:, :, None]
    ok = _and(rt_ok, m_ok)
    out["6475"] = _lines(charge_code("CAISO", "6475"), inp, q75, 12, inp.rt_price_u, 1,
                         ok, [(rt_ok, "no RTD LMP"), (m_ok, "no metered value")], "RTD_LMP",
                         {"METER": inp.rt_meter_wh})
    return out


def _pjm(inp: ShadowInputs) -> dict[str, CodeLines]:
    if inp.rt_minutes != 5:
        raise ShadowInputError(f"PJM settles real time on 5-minute intervals, not {inp.rt_minutes}")
    da_ok = _ok(inp.da_price_ok, inp.da_price_u)
    rt_ok = _ok(inp.rt_price_ok, inp.rt_price_u)
    m_ok = _ok(inp.rt_meter_ok, inp.rt_meter_wh)
    da_withdrawal = inp.da_purchase_wh - inp.da_sale_wh
    out = {"1200": _lines(charge_code("PJM", "1200"), inp, da_withdrawal, 1, inp.da_price_u, 1, da_ok,
                          [(da_ok, "no day-ahead system energy price")], "DA_SYSTEM_ENERGY_PRICE",
                          {"DA_INJECTION": inp.da_sale_wh})}
    qty12 = -12 * inp.rt_meter_wh - _rep(da_withdrawal, 12)
    ok = _and(rt_ok, m_ok)
    out["1205"] = _lines(charge_code("PJM", "1205"), inp, qty12, 12, inp.rt_price_u, 1, ok,
                         [(rt_ok, "no real-time system energy price"), (m_ok, "no metered value")],
                         "RT_SYSTEM_ENERGY_PRICE", {"RT_INJECTION": inp.rt_meter_wh})
    return out


_ENGINES = {"ERCOT": _ercot, "CAISO": _caiso, "PJM": _pjm}


def shadow_settle(inp: ShadowInputs) -> ShadowResult:
    """Recompute every charge code of ``inp.iso`` (see :func:`kwhub.core.markets.charge_codes.codes_of`)."""
    try:
        engine = _ENGINES[inp.iso]
    except KeyError:
        raise ShadowInputError(f"no shadow settlement for ISO {inp.iso!r} (known: {', '.join(_ENGINES)})") from None
    # the inputs' SHA-256 runs beside the formulas (hashlib and numpy both release the GIL;
    # neither writes to the inputs)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow-digest") as pool:
        digest = pool.submit(inp.digest)
        codes = engine(inp)
        inputs_sha256 = digest.result()
    assert [c.code for c in codes_of(inp.iso)] == list(codes)
    return ShadowResult(inp.iso, codes, inputs_sha256, dict(inp.price_versions))
