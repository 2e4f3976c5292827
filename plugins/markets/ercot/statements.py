"""ERCOT settlement statements (``Statement`` XML) and their extracts.

The statement lists each charge type (``AmountCode`` DAESAMT, DAEPAMT, RTEIAMT ...) with
one ``Interval`` per settlement interval: ``@NUM`` counts the operating day's intervals
(1..24 hours, 1..96 quarter-hours; 23/92 and 25/100 on the DST days) and
``IntervalEnding`` is the local ``hh:mm`` end, ``24:00`` for the last. The amounts are
the QSE's, ERCOT's sign (negative = paid to the QSE).

The extract holds the billing determinants per resource, in the layout of ERCOT's
DAM/RTM output header and interval tables joined into one row per determinant:
``UIDBILLDETERMINANT, QSECODE, UIDSETLPOINT, UIDRESOURCE, SAVERECORDER, SAVECHANNEL,
STARTTIME, STOPTIME, TZSTDNAME, DSTPARTICIPANT, TOTAL, MAXIMUM, MINIMUM,
INTERVALCOUNT, INT001..INT100`` (shape-compatible, not ERCOT's exact file set). With an
extract, statement lines are per resource and carry their determinants; the statement's
interval values must equal the extract's sum over resources, or the pair is refused.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache

from lxml import etree

from kwhub.core.intervals import IntervalDataError
from kwhub.core.markets.hour_labels import DayGrid, LabelError
from kwhub.core.markets.models import Statement, StatementLine
from kwhub.hub.helpers.safe_xml import UnsafeXmlError, parse_xml
from kwhub.plugins.markets.ercot.ews import SCHEMA_DIR

KINDS = {"INITIAL": "initial", "FINAL": "final", "TRUEUP": "true_up", "RESETTLEMENT": "resettlement"}
ERCOT_KINDS = {v: k for k, v in KINDS.items()}
DESCRIPTIONS = {"DAESAMT": "Day-Ahead Energy Sale", "DAEPAMT": "Day-Ahead Energy Purchase",
                "RTEIAMT": "Real-Time Energy Imbalance at a Resource Node"}
MARKET_OF = {"DAESAMT": "DAM", "DAEPAMT": "DAM", "RTEIAMT": "RTM"}
# determinants that go with each amount in the extract
DETERMINANTS = {"DAESAMT": ("DASPP", "DAES"), "DAEPAMT": ("DASPP", "DAEP"), "RTEIAMT": ("RTSPP", "RTMG")}
EXTRACT_HEADER = ["UIDBILLDETERMINANT", "QSECODE", "UIDSETLPOINT", "UIDRESOURCE", "SAVERECORDER", "SAVECHANNEL",
                  "STARTTIME", "STOPTIME", "TZSTDNAME", "DSTPARTICIPANT", "TOTAL", "MAXIMUM", "MINIMUM",
                  "INTERVALCOUNT"] + [f"INT{i:03d}" for i in range(1, 101)]


@cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "statement.xsd")))


def validate_statement(data: bytes) -> list[str]:
    """Schema problems of a statement document (empty = valid)."""
    try:
        root = parse_xml(data, "statement")
    except UnsafeXmlError as exc:
        return [str(exc)]
    if _schema().validate(root):
        return []
    return [f"line {e.line}: {e.message}" for e in _schema().error_log]


def _grain(n: int, day: date, tz: str) -> int:
    for minutes in (60, 15, 5):
        if len(DayGrid(day, tz, minutes)) == n:
            return minutes
    raise LabelError(f"{n} intervals fit no 60-, 15- or 5-minute grid of {day}")


def _money(text: str, where: str, source: str) -> Decimal:
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise IntervalDataError(f"not a number: {text!r}", source=source, where=where) from None
    q = d.quantize(Decimal("0.01"))
    if q != d:
        raise IntervalDataError(f"amount {text} has more than 2 decimals", source=source, where=where)
    return q


def parse_statement(data: bytes, source: str, tz: str = "America/Chicago", extract: bytes | None = None,
                    extract_source: str = "", resource: str = "") -> Statement:
    """A statement (and its extract) as per-resource lines; see the module doc.

    Without an extract, the QSE's lines are attributed to ``resource`` (a QSE with one
    resource); with neither, the statement is refused.
    """
    problems = validate_statement(data)
    if problems:
        raise IntervalDataError("not a valid ERCOT statement: " + "; ".join(problems[:5]), source=source)
    root = parse_xml(data, source)
    acc = root.find("AccountSection")
    assert acc is not None
    day = datetime.strptime(acc.findtext("OperatingDay", ""), "%m/%d/%Y").date()
    raw_kind = (acc.findtext("StatementType") or "").strip().upper()
    if raw_kind not in KINDS:
        raise IntervalDataError(f"StatementType {raw_kind!r} is not one of {sorted(KINDS)}", source=source,
                                where="AccountSection/StatementType")
    market = (acc.findtext("MarketType") or "").strip().upper()
    qse_totals: dict[tuple[str, int], Decimal] = {}
    grids: dict[int, DayGrid] = {}
    for k, ct in enumerate(root.iterfind("DataSection/ChargeType"), start=1):
        code = (ct.findtext("AmountCode") or "").strip()
        intervals = ct.findall("Interval")
        where = f"ChargeType[{k}] ({code})"
        try:
            minutes = _grain(len(intervals), day, tz)
        except LabelError as exc:
            raise IntervalDataError(str(exc), source=source, where=where) from None
        grid = grids.setdefault(minutes, DayGrid(day, tz, minutes))
        declared = ct.findtext("NumberOfIntervals")
        if declared is not None and int(declared) != len(intervals):
            raise IntervalDataError(f"NumberOfIntervals {declared} but {len(intervals)} Interval elements",
                                    source=source, where=where)
        for iv in intervals:
            num = int(iv.get("NUM", "0"))
            try:
                i = grid.index_of_number(num, (iv.findtext("IntervalEnding") or "").strip(), where=f"{where} NUM={num}")
            except LabelError as exc:
                raise IntervalDataError(str(exc), source=source, where=f"{where}/Interval[@NUM={num}]") from None
            qse_totals[(code, int(grid.starts[i]))] = _money(iv.findtext("IntervalValue") or "",
                                                             f"{where}/Interval[@NUM={num}]", source)
    lines: list[StatementLine] = []
    if extract is not None:
        lines = _extract_lines(extract, extract_source or f"{source} extract", day, tz, set(c for c, _ in qse_totals))
        sums: dict[tuple[str, int], Decimal] = defaultdict(lambda: Decimal("0.00"))
        for ln in lines:
            sums[(ln.code, int(ln.start.timestamp()))] += ln.amount
        for key, total in qse_totals.items():
            if sums.get(key, Decimal("0.00")) != total:
                when = datetime.fromtimestamp(key[1], tz=UTC).isoformat()
                raise IntervalDataError(f"{key[0]} at {when}: the statement says {total}, its extract's resources "
                                        f"add up to {sums.get(key, Decimal('0.00'))}", source=source)
    elif resource:
        for (code, start), amount in sorted(qse_totals.items()):
            minutes = 60 if MARKET_OF.get(code) == "DAM" else 15
            grid = grids[minutes]
            i = int(list(grid.starts).index(start))
            lines.append(StatementLine(code=code, resource=resource, start=datetime.fromtimestamp(start, tz=UTC),
                                       minutes=minutes, amount=amount, label=grid.label(i)))
    else:
        raise IntervalDataError("a statement without its extract can only be read for a QSE with one resource "
                                "(configure the resource, or give the extract)", source=source)
    return Statement(iso="ERCOT", operating_day=day, kind=KINDS[raw_kind],  # type: ignore[arg-type]
                     statement_id=(acc.findtext("StatementID") or "").strip(),
                     market="DA" if market == "DAM" else "RT", lines=tuple(lines), source=source,
                     issued=datetime.strptime(acc.findtext("BatchDate", ""), "%m/%d/%Y").date())


def _extract_lines(data: bytes, source: str, day: date, tz: str, codes: set[str]) -> list[StatementLine]:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    if not rows or [h.strip() for h in rows[0]] != EXTRACT_HEADER:
        raise IntervalDataError("not a settlement extract header (UIDBILLDETERMINANT ... INT100)", source=source,
                                where="line 1")
    values: dict[tuple[str, str], list[str]] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        f = dict(zip(EXTRACT_HEADER, row, strict=False))
        count = int(f["INTERVALCOUNT"])
        key = (f["UIDBILLDETERMINANT"].strip(), f["UIDRESOURCE"].strip())
        if key in values:
            raise IntervalDataError(f"determinant {key[0]} of {key[1]} appears twice", source=source, where=f"line {n}")
        values[key] = [f[f"INT{i:03d}"] for i in range(1, count + 1)]
    out: list[StatementLine] = []
    for (name, res), vals in sorted(values.items()):
        if name not in codes:
            continue
        minutes = _grain(len(vals), day, tz)
        grid = DayGrid(day, tz, minutes)
        dets = {d: values.get((d, res)) for d in DETERMINANTS.get(name, ())}
        for i, v in enumerate(vals):
            det = {}
            for d, dv in dets.items():
                if dv is not None and dv[i].strip():
                    det[d] = Decimal(dv[i].strip())
            out.append(StatementLine(code=name, resource=res, start=datetime.fromtimestamp(int(grid.starts[i]), tz=UTC),
                                     minutes=minutes, amount=_money(v, f"{name} {res} INT{i + 1:03d}", source),
                                     determinants=det, label=grid.label(i)))
    return out


def render_statement(day: date, tz: str, kind: str, statement_id: str, qse: str, market: str,
                     amounts: dict[str, Sequence[Decimal]], batch_date: date,
                     history: Sequence[tuple[str, Decimal]] = ()) -> bytes:
    """A ``Statement`` of one market (``DAM``/``RTM``) with QSE-level interval amounts per code."""
    root = etree.Element("Statement")
    acc = etree.SubElement(root, "AccountSection")
    for tag, text in (("MarketType", market), ("OperatingDay", f"{day:%m/%d/%Y}"),
                      ("BatchDate", f"{batch_date:%m/%d/%Y}"), ("StatementType", ERCOT_KINDS[kind]),
                      ("Channel", "1"), ("ParticipantName", qse), ("AccountID", qse), ("StatementID", statement_id)):
        etree.SubElement(acc, tag).text = text
    data = etree.SubElement(root, "DataSection")
    total = Decimal("0.00")
    for order, (code, vals) in enumerate(amounts.items(), start=1):
        grid = DayGrid(day, tz, 60 if MARKET_OF.get(code) == "DAM" else 15)
        if len(vals) != len(grid):
            raise ValueError(f"{code}: {len(vals)} amounts for {len(grid)} intervals of {day}")
        ct = etree.SubElement(data, "ChargeType")
        etree.SubElement(ct, "AmountDescription").text = DESCRIPTIONS.get(code, code)
        etree.SubElement(ct, "AmountCode").text = code
        etree.SubElement(ct, "SortGroup").text = market
        etree.SubElement(ct, "SortOrder").text = str(order)
        etree.SubElement(ct, "NumberOfIntervals").text = str(len(vals))
        for i, v in enumerate(vals):
            iv = etree.SubElement(ct, "Interval", NUM=str(i + 1))
            etree.SubElement(iv, "IntervalEnding").text = grid.ending[i]
            etree.SubElement(iv, "IntervalValue").text = f"{v:.2f}"
            total += v
    summ = etree.SubElement(root, "Summary")
    for prev_kind, prev_total in history:
        h = etree.SubElement(summ, "History")
        etree.SubElement(h, "PrevStatementType").text = ERCOT_KINDS[prev_kind]
        etree.SubElement(h, "PrevTotal").text = f"{prev_total:.2f}"
    cur = etree.SubElement(summ, "CurrentDollars")
    etree.SubElement(cur, "StatementTotal").text = f"{total:.2f}"
    etree.SubElement(cur, "NetAmount").text = f"{total - (history[-1][1] if history else Decimal(0)):.2f}"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def render_extract(day: date, tz: str, qse: str, rows: dict[tuple[str, str], Sequence[Decimal]]) -> bytes:
    """An extract: ``rows[(determinant, resource)]`` = interval values in the day's order."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EXTRACT_HEADER)
    grid = DayGrid(day, tz, 60)
    start = grid.local_iso(0)
    stop = grid.local_iso(len(grid) - 1, end=True)
    for (name, res), vals in rows.items():
        nums = [Decimal(v) for v in vals]
        slots = [format(v, "f") for v in nums] + [""] * (100 - len(nums))
        w.writerow([name, qse, res, res, "", "1", start, stop, "CPT", "Y", format(sum(nums, Decimal(0)), "f"),
                    format(max(nums), "f"), format(min(nums), "f"), len(nums), *slots])
    return buf.getvalue().encode()
