"""ANSI X12 004010 810 (invoice) and 867 (product transfer / usage) for energy billing.

Envelope: a fixed-width 106-character ISA (element separator ``*``, sub-element separator
``>``, segment terminator ``~``), GS/GE (functional group ``IN`` for 810, ``PT`` for 867),
ST/SE with SE01 counting every segment from ST to SE, and the control-number pairs
ISA13 = IEA02, GS06 = GE02, ST02 = SE02. The control number comes from
``context.envelope.control_number``: the hub takes it from a sequence persisted per
trading partner (:meth:`X12InvoiceRenderer.control_partner`), so every interchange, and the
810 and 867 of one invoice, carry their own. Without an envelope (a render outside the
hub) it is a CRC of the invoice id, version and transaction set.

Segments follow the 004010 transaction-set tables in order (810 heading: BIG, NTE, CUR,
REF, N1 loop, ITD, DTM; 867 heading: BPT, DTM, REF, N1 loop; PTD loop: PTD, DTM, REF,
QTY loop), and a document whose mandatory loop cannot be filled is refused with the
reason (:class:`X12Error`): an 810 needs an IT1 line, an 867 a PTD loop (an energy line
or interval usage).

810 content: BIG (BIG07 transaction type: ``DI`` debit invoice, ``DR`` debit memo for an
adjustment invoice, ``CR`` credit memo for a credit note; BIG08 purpose ``00`` original),
CUR, REF*11 account (buyer id), REF*CT contract, REF*OI original invoice number (adjustment
and credit), N1 loops SE (seller) and BY (buyer) with N3/N4/REF*TJ, ITD terms, DTM*150/151
service period, IT1 per line (quantity, unit KH/K1/EA/MO, unit price) with TXI, PID and
DTM*150/151, then TDS (total in cents, implied two decimals), TXI per tax subtotal and
CTT (number of IT1 lines).

867 content: BPT (report type ``DD`` usage summary, or ``C1`` when interval usage is
given), DTM*150/151, REF*11/REF*OI, N1 loops, one PTD*SU loop per energy line (DTM*150/151
with the line's period, REF*ZZ line, QTY*QD in KH) and, with ``context.usage``, a PTD*PM
loop with QTY*QD + DTM*582 (UTC start) per interval; CTT counts the PTD loops.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

import numpy as np

from kwhub.core.adapters import AdapterConfig, InvoiceRenderer
from kwhub.core.hookspecs import hookimpl
from kwhub.core.invoice import Invoice, InvoiceLine, PartyRef
from kwhub.core.money import money_str
from kwhub.core.render_context import RenderContext, UsageSeries

ELEMENT_SEP = "*"
SUB_SEP = ">"
SEGMENT_TERM = "~"
ISA_LENGTH = 106
# Unit of measure (X12 element 355) and the factor applied to the quantity.
X12_UNITS: dict[str, tuple[str, Decimal]] = {
    "kWh": ("KH", Decimal(1)),
    "MWh": ("KH", Decimal(1000)),
    "kW": ("K1", Decimal(1)),
    "MW": ("K1", Decimal(1000)),
    "each": ("EA", Decimal(1)),
    "month": ("MO", Decimal(1)),
}
ENERGY_UNITS = {"kWh", "MWh"}
_FORBIDDEN = str.maketrans({ELEMENT_SEP: " ", SUB_SEP: " ", SEGMENT_TERM: " ", "\n": " ", "\r": " "})


class X12Error(ValueError):
    """An X12 document that breaks the envelope or content rules."""


def clean(value: str) -> str:
    """Element text without separator characters."""
    return value.translate(_FORBIDDEN).strip()


def control_number(invoice: Invoice, context: RenderContext | None, set_id: str = "") -> int:
    """The control number: the context's envelope, else a CRC of invoice, version and set."""
    given = context.control_number() if context is not None else None
    if given is not None:
        if not 0 < given < 1_000_000_000:
            raise X12Error(f"control number {given} is outside 1..999999999")
        return given
    n = zlib.crc32(f"{invoice.id}:v{invoice.version}:{set_id}".encode()) % 1_000_000_000
    return n or 1


def x12_price(line: InvoiceLine) -> tuple[Decimal, str, Decimal]:
    """(quantity, unit code, unit price) with quantity x price rounding to the line amount.

    When the contract's unit price does not reproduce the amount (a charge built interval by
    interval), the price is given with as many decimals as needed (up to 15) to do so.
    """
    unit, factor = X12_UNITS.get(line.unit, ("ZZ", Decimal(1)))
    q = line.quantity * factor
    p = line.unit_price / factor
    cents = Decimal("0.01")
    if (q * p).quantize(cents, rounding="ROUND_HALF_UP") == line.amount:
        return q, unit, p.normalize() if p != 0 else Decimal(0)
    if q != 0:
        for places in range(2, 16):
            cand = (line.amount / q).quantize(Decimal(1).scaleb(-places), rounding="ROUND_HALF_UP")
            if (q * cand).quantize(cents, rounding="ROUND_HALF_UP") == line.amount:
                return q, unit, cand
    raise X12Error(f"line {line.number}: amount {line.amount} cannot be expressed as {q} x price")


def cents(amount: Decimal) -> str:
    """TDS style amount: implied two decimals, no decimal point."""
    return str(int((amount * 100).to_integral_value(rounding="ROUND_HALF_UP")))


def num(value: Decimal) -> str:
    """An X12 R (decimal) value: no exponent, no trailing zeros after the point."""
    s = money_str(value)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


@dataclass
class _Env:
    sender_qual: str
    sender: str
    receiver_qual: str
    receiver: str
    usage: str
    created: datetime
    control: int


class _Writer:
    """Collects segments of one transaction set."""

    def __init__(self) -> None:
        self.segments: list[str] = []

    def seg(self, *elements: str) -> None:
        parts = list(elements)
        while len(parts) > 1 and parts[-1] == "":
            parts.pop()
        self.segments.append(ELEMENT_SEP.join(parts))


def _isa(env: _Env, functional_id: str, body: list[str]) -> bytes:
    c = env.control
    isa = ELEMENT_SEP.join([
        "ISA", "00", " " * 10, "00", " " * 10,
        env.sender_qual.ljust(2)[:2], clean(env.sender).ljust(15)[:15],
        env.receiver_qual.ljust(2)[:2], clean(env.receiver).ljust(15)[:15],
        env.created.strftime("%y%m%d"), env.created.strftime("%H%M"), "U", "00401",
        f"{c:09d}", "0", env.usage, SUB_SEP,
    ])
    if len(isa) + 1 != ISA_LENGTH:
        raise X12Error(f"ISA segment is {len(isa) + 1} characters, expected {ISA_LENGTH}")
    gs = ELEMENT_SEP.join(["GS", functional_id, clean(env.sender), clean(env.receiver),
                           env.created.strftime("%Y%m%d"), env.created.strftime("%H%M"),
                           str(c), "X", "004010"])
    segs = [isa, gs, *body, f"GE*1*{c}", f"IEA*1*{c:09d}"]
    return (SEGMENT_TERM.join(segs) + SEGMENT_TERM + "\n").encode("ascii", errors="replace")


def _wrap_st(set_id: str, w: _Writer, control: int) -> list[str]:
    st_control = f"{control:04d}"
    body = [f"ST*{set_id}*{st_control}", *w.segments]
    body.append(f"SE*{len(body) + 1}*{st_control}")
    return body


def _parties(w: _Writer, invoice: Invoice) -> None:
    for code, p in (("SE", invoice.seller), ("BY", invoice.buyer)):
        _party(w, code, p)


def _party(w: _Writer, code: str, p: PartyRef) -> None:
    w.seg("N1", code, clean(p.name)[:60], "92", clean(p.id)[:80])
    if p.address.street:
        w.seg("N3", clean(p.address.street)[:55])
    a = p.address
    if a.city or a.postal_code:
        w.seg("N4", clean(a.city)[:30], clean(a.region)[:2], clean(a.postal_code)[:15], clean(a.country)[:3])
    if p.tax_id:
        w.seg("REF", "TJ", clean(p.tax_id)[:30])


def _d8(d: date) -> str:
    return d.strftime("%Y%m%d")


def build_810(invoice: Invoice, control: int = 1) -> list[str]:
    """The ST..SE segments of the 810 (without terminators)."""
    if not invoice.lines:
        raise X12Error(f"invoice {invoice.number}: an 810 needs at least one IT1 line and the document has none")
    w = _Writer()
    tx_type = "CR" if invoice.is_credit else ("DR" if invoice.kind == "adjustment" else "DI")
    w.seg("BIG", _d8(invoice.issue_date), clean(invoice.number), "", "", "", "", tx_type, "00")
    if invoice.note:
        w.seg("NTE", "GEN", clean(invoice.note)[:80])
    w.seg("CUR", "SE", invoice.currency)
    w.seg("REF", "11", clean(invoice.buyer.id)[:30])
    if invoice.contract_id:
        w.seg("REF", "CT", clean(invoice.contract_id)[:30])
    for ref in invoice.references:
        w.seg("REF", "OI", clean(ref.number)[:30], "original invoice")
    _parties(w, invoice)
    if not invoice.is_credit:  # a credit memo is not paid by the buyer: no terms with a due date
        days = (invoice.due_date - invoice.issue_date).days
        w.seg("ITD", "01", "3", "", "", "", _d8(invoice.due_date), str(days))
    w.seg("DTM", "150", _d8(invoice.period_start))
    w.seg("DTM", "151", _d8(invoice.period_end))
    for line in invoice.lines:
        q, unit, price = x12_price(line)
        w.seg("IT1", str(line.number), num(q), unit, num(price), "", "SV", clean(line.component_id or line.charge_type)[:48])
        if line.tax_category not in ("O",):
            w.seg("TXI", "ST", "", num(line.tax_percent), "", "", "1" if line.tax_category in ("E", "Z") else "2")
        w.seg("PID", "F", "", "", "", clean(line.description)[:80])
        if line.period_start:
            w.seg("DTM", "150", _d8(line.period_start))
        if line.period_end:
            w.seg("DTM", "151", _d8(line.period_end))
    w.seg("TDS", cents(invoice.total))
    for t in invoice.taxes:
        exempt = "1" if t.category in ("E", "Z", "O") else "2"
        w.seg("TXI", "ST", money_str(t.tax_amount), num(t.percent), "", "", exempt, "",
              money_str(t.taxable_amount))
    w.seg("CTT", str(len(invoice.lines)))
    return _wrap_st("810", w, control)


def usage_series(usage: Any) -> UsageSeries:
    """Interval usage as a :class:`UsageSeries` (pairs or arrays accepted), finite kWh only."""
    try:
        series = UsageSeries.of(usage)
    except ValueError as exc:
        raise X12Error(str(exc)) from None
    if not np.all(np.isfinite(series.kwh)):
        raise X12Error("usage: non-finite kWh value")
    return series


def build_867(invoice: Invoice, usage: Any = None, control: int = 1) -> list[str]:
    """The ST..SE segments of the 867 (without terminators).

    Raises :class:`X12Error` when there is nothing to report: no energy line and no
    interval usage leaves the mandatory PTD loop empty.
    """
    series = usage_series(usage) if usage is not None else None
    energy = [ln for ln in invoice.lines if ln.unit in ENERGY_UNITS]
    if not energy and series is None:
        raise X12Error(f"{invoice.kind.replace('_', ' ')} {invoice.number}: an 867 needs a PTD loop, but the document "
                       "has no energy line and no interval usage was given (the run's usage could not be read)")
    w = _Writer()
    w.seg("BPT", "00", clean(invoice.number), _d8(invoice.issue_date), "C1" if series is not None else "DD")
    w.seg("DTM", "150", _d8(invoice.period_start))
    w.seg("DTM", "151", _d8(invoice.period_end))
    w.seg("REF", "11", clean(invoice.buyer.id)[:30])
    for ref in invoice.references:
        w.seg("REF", "OI", clean(ref.number)[:30], "original invoice")
    _parties(w, invoice)
    loops = 0
    for line in energy:
        unit, factor = X12_UNITS[line.unit]
        loops += 1
        w.seg("PTD", "SU")
        w.seg("DTM", "150", _d8(line.period_start or invoice.period_start))
        w.seg("DTM", "151", _d8(line.period_end or invoice.period_end))
        w.seg("REF", "ZZ", f"LINE{line.number}", clean(line.description)[:80])
        w.seg("QTY", "QD", num(line.quantity * factor), unit)
    if series is not None:
        loops += 1
        w.seg("PTD", "PM")
        w.seg("DTM", "150", _d8(invoice.period_start))
        w.seg("DTM", "151", _d8(invoice.period_end))
        starts, values = series.starts, series.kwh
        if starts.size:
            days = starts.astype("datetime64[D]")
            day = np.char.replace(np.datetime_as_string(days, unit="D"), "-", "")
            minutes = (starts - days).astype(np.int64)
            hhmm = np.char.mod("%04d", (minutes // 60) * 100 + minutes % 60)
            qty = np.char.mod("QTY*QD*%.3f*KH", values)
            dtm = np.char.add(np.char.add("DTM*582*", day), np.char.add("*", np.char.add(hhmm, "*UT")))
            inter = np.empty(values.size * 2, dtype=object)
            inter[0::2] = qty
            inter[1::2] = dtm
            w.segments.extend(inter.tolist())
    w.seg("CTT", str(loops))
    return _wrap_st("867", w, control)


class X12Config(AdapterConfig):
    """Interchange addressing; empty ids fall back to the parties' ids."""

    sender_qualifier: str = "ZZ"
    sender_id: str = ""
    receiver_qualifier: str = "ZZ"
    receiver_id: str = ""
    usage_indicator: str = "P"  # P production, T test


class _X12Renderer(InvoiceRenderer):
    set_id: ClassVar[str] = ""
    functional_id: ClassVar[str] = ""
    media_type: ClassVar[str] = "application/EDI-X12"
    file_extension: ClassVar[str] = ".x12"
    capabilities: ClassVar[frozenset[str]] = frozenset({"render", "validate"})
    Config = X12Config
    config: X12Config

    def _ids(self, invoice: Invoice) -> tuple[str, str]:
        return ((self.config.sender_id or invoice.seller.id).upper(),
                (self.config.receiver_id or invoice.buyer.id).upper())

    def _env(self, invoice: Invoice, context: RenderContext | None) -> _Env:
        created = (context.created_at() if context is not None else None) or datetime.now(UTC)
        sender, receiver = self._ids(invoice)
        return _Env(
            sender_qual=self.config.sender_qualifier,
            sender=sender,
            receiver_qual=self.config.receiver_qualifier,
            receiver=receiver,
            usage=self.config.usage_indicator,
            created=created,
            control=control_number(invoice, context, self.set_id),
        )

    def control_partner(self, invoice: Invoice) -> str | None:
        """``x12:<sender qualifier>:<sender>><receiver qualifier>:<receiver>``: one sequence per pair."""
        sender, receiver = self._ids(invoice)
        return (f"x12:{self.config.sender_qualifier}:{clean(sender)[:15]}>"
                f"{self.config.receiver_qualifier}:{clean(receiver)[:15]}")

    def _body(self, invoice: Invoice, context: RenderContext | None, control: int) -> list[str]:
        raise X12Error("no transaction set")

    def render(self, invoice: Invoice, context: RenderContext | None = None) -> bytes:
        """One interchange holding one group with one transaction set."""
        env = self._env(invoice, context)
        return _isa(env, self.functional_id, self._body(invoice, context, env.control))

    def validate(self, data: bytes) -> list[str]:
        """Envelope structure, control numbers and segment counts."""
        return check_envelope(data, self.set_id)


class X12InvoiceRenderer(_X12Renderer):
    """ANSI X12 810 invoice (004010)."""

    type_id: ClassVar[str] = "erp.x12_810"
    title: ClassVar[str] = "ANSI X12 810 invoice"
    format_id: ClassVar[str] = "x12_810"
    set_id: ClassVar[str] = "810"
    functional_id: ClassVar[str] = "IN"

    def _body(self, invoice: Invoice, context: RenderContext | None, control: int) -> list[str]:
        return build_810(invoice, control)


class X12UsageRenderer(_X12Renderer):
    """ANSI X12 867 product transfer / usage report (004010)."""

    type_id: ClassVar[str] = "erp.x12_867"
    title: ClassVar[str] = "ANSI X12 867 usage"
    format_id: ClassVar[str] = "x12_867"
    set_id: ClassVar[str] = "867"
    functional_id: ClassVar[str] = "PT"

    def _body(self, invoice: Invoice, context: RenderContext | None, control: int) -> list[str]:
        return build_867(invoice, context.usage if context is not None else None, control)


def check_envelope(data: bytes, set_id: str = "") -> list[str]:
    """Problems of an X12 interchange's envelope (empty when sound)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        return [f"X12: byte {exc.start} is not ASCII"]
    if len(text) < ISA_LENGTH or not text.startswith("ISA"):
        return ["X12: interchange does not start with a 106-character ISA segment"]
    es, ss, term = text[3], text[104], text[105]
    if text[:ISA_LENGTH].count(es) != 16:
        return ["X12 ISA: expected 16 element separators in the first 106 characters"]
    segs = [s.strip("\r\n") for s in text.split(term)]
    segs = [s for s in segs if s]
    out: list[str] = []
    isa = segs[0].split(es)
    if isa[16] != ss:
        out.append(f"X12 ISA16: sub-element separator {isa[16]!r} does not match position 105")
    groups = 0
    i = 1
    iea = None
    while i < len(segs):
        el = segs[i].split(es)
        tag = el[0]
        if tag == "GS":
            groups += 1
            gs_ctrl = el[6] if len(el) > 6 else ""
            sets = 0
            i += 1
            while i < len(segs) and not segs[i].startswith("GE" + es):
                st = segs[i].split(es)
                if st[0] != "ST":
                    out.append(f"X12 segment {i + 1}: expected ST, found {st[0]}")
                    return out
                sets += 1
                if set_id and st[1] != set_id:
                    out.append(f"X12 ST01 (segment {i + 1}): transaction set {st[1]}, expected {set_id}")
                start = i
                while i < len(segs) and not segs[i].startswith("SE" + es):
                    i += 1
                if i >= len(segs):
                    out.append(f"X12: ST {st[2]} has no SE")
                    return out
                se = segs[i].split(es)
                count = i - start + 1
                if se[1] != str(count):
                    out.append(f"X12 SE01 (segment {i + 1}): says {se[1]} segments, counted {count}")
                if se[2] != st[2]:
                    out.append(f"X12 SE02 (segment {i + 1}): {se[2]} != ST02 {st[2]}")
                i += 1
            if i >= len(segs):
                out.append("X12: GS without GE")
                return out
            ge = segs[i].split(es)
            if ge[1] != str(sets):
                out.append(f"X12 GE01 (segment {i + 1}): says {ge[1]} sets, counted {sets}")
            if ge[2] != gs_ctrl:
                out.append(f"X12 GE02 (segment {i + 1}): {ge[2]} != GS06 {gs_ctrl}")
            i += 1
        elif tag == "IEA":
            iea = el
            if i != len(segs) - 1:
                out.append(f"X12: {len(segs) - 1 - i} segment(s) after IEA")
            break
        else:
            out.append(f"X12 segment {i + 1}: unexpected {tag} outside a functional group")
            i += 1
    if iea is None:
        out.append("X12: no IEA trailer")
        return out
    if iea[1] != str(groups):
        out.append(f"X12 IEA01: says {iea[1]} groups, counted {groups}")
    if iea[2] != isa[13]:
        out.append(f"X12 IEA02: {iea[2]} != ISA13 {isa[13]}")
    return out


@hookimpl
def kwhub_register_erp_adapters(register: Any) -> None:
    register(X12InvoiceRenderer)
    register(X12UsageRenderer)
