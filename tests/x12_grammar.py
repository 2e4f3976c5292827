"""An order-enforcing grammar of the X12 004010 810 and 867 transaction sets, for the tests.

Independent of :mod:`kwhub.plugins.erp.x12`: the tables below are the 004010 transaction-set
tables (heading, detail, summary) with each segment's position, requirement (M/O) and
maximum use, and the loops with their repeat counts. :func:`check_order` walks a
transaction's segments through the table the way an EDI translator does and raises
:class:`X12OrderError` naming the segment and the rule it breaks: a segment out of order
or unknown to the set, a mandatory segment or loop missing, a maximum use exceeded.

Only the optional segments and loops an energy invoice or usage report could carry are
listed; a segment outside the table is an error, as a translator without it would treat it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

MANY = 10**9


class X12OrderError(ValueError):
    """A transaction set breaks the 004010 segment table."""


@dataclass(frozen=True)
class Seg:
    tag: str
    req: str = "O"
    max: int = 1


@dataclass(frozen=True)
class Loop:
    """A loop: its first entry is the trigger segment (mandatory inside the loop)."""

    name: str
    req: str
    max: int
    body: tuple[Seg | Loop, ...] = field(default_factory=tuple)

    @property
    def tag(self) -> str:
        first = self.body[0]
        return first.tag if isinstance(first, Seg) else first.tag


def _n1(max_: int) -> Loop:
    return Loop("N1", "O", max_, (Seg("N1", "M"), Seg("N2", "O", 2), Seg("N3", "O", 2), Seg("N4"),
                                   Seg("REF", "O", 12), Seg("PER", "O", 3), Seg("DMG")))


TABLE_810: tuple[Seg | Loop, ...] = (
    Seg("ST", "M"), Seg("BIG", "M"), Seg("NTE", "O", 100), Seg("CUR"), Seg("REF", "O", 12), Seg("YNQ", "O", 10),
    Seg("PER", "O", 3), _n1(200), Seg("ITD", "O", MANY), Seg("DTM", "O", 10), Seg("FOB"), Seg("PID", "O", 200),
    Seg("MEA", "O", 40), Seg("PWK", "O", 25), Seg("PKG", "O", 25), Seg("L7"), Seg("BAL", "O", MANY), Seg("INC"),
    Seg("PAM", "O", MANY),
    Loop("IT1", "O", 200000, (
        Seg("IT1", "M"), Seg("CRC"), Seg("QTY", "O", 5), Seg("CUR"), Seg("IT3", "O", 5), Seg("TXI", "O", 10),
        Seg("CTP", "O", 25), Seg("PAM", "O", 10), Seg("MEA", "O", 40),
        Loop("PID", "O", 1000, (Seg("PID", "M"), Seg("MEA", "O", 10))),
        Seg("PWK", "O", 25), Seg("PKG", "O", 25), Seg("PO4"), Seg("ITD", "O", 2), Seg("REF", "O", MANY),
        Seg("YNQ", "O", 10), Seg("PER", "O", 5), Seg("SDQ", "O", 500), Seg("DTM", "O", 10), Seg("CAD", "O", MANY),
        Seg("L7", "O", MANY), Seg("SR"),
        Loop("SAC", "O", 25, (Seg("SAC", "M"), Seg("TXI", "O", 10))),
        _n1(200),
    )),
    Seg("TDS", "M"), Seg("TXI", "O", 10), Seg("CAD"), Seg("AMT", "O", MANY),
    Loop("SAC", "O", 25, (Seg("SAC", "M"), Seg("TXI", "O", 10))),
    Loop("ISS", "O", MANY, (Seg("ISS", "M"), Seg("PID"))),
    Seg("CTT"), Seg("SE", "M"),
)

TABLE_867: tuple[Seg | Loop, ...] = (
    Seg("ST", "M"), Seg("BPT", "M"), Seg("CUR"), Seg("DTM", "O", 10), Seg("REF", "O", 12), Seg("PER", "O", 3),
    Seg("MEA", "O", 20), Seg("PSA", "O", 10),
    Loop("N1", "O", 5, (Seg("N1", "M"), Seg("N2", "O", 2), Seg("N3", "O", 2), Seg("N4"), Seg("REF", "O", 12),
                        Seg("PER", "O", 3))),
    Loop("PTD", "M", MANY, (
        Seg("PTD", "M"), Seg("DTM", "O", 10), Seg("REF", "O", 20), Seg("PRF"), Seg("PER", "O", 3), Seg("MAN"),
        Loop("N1", "O", 5, (Seg("N1", "M"), Seg("N2", "O", 2), Seg("N3", "O", 2), Seg("N4"), Seg("REF", "O", 20),
                            Seg("PER", "O", 3))),
        Loop("QTY", "O", MANY, (
            Seg("QTY", "M"), Seg("LIN"), Seg("PO3", "O", 25), Seg("PO4"), Seg("UIT", "O", 12), Seg("AMT", "O", 12),
            Seg("ITA", "O", 10), Seg("PID", "O", 1000), Seg("MEA", "O", 40), Seg("PWK", "O", 25),
            Seg("PKG", "O", 25), Seg("REF", "O", MANY), Seg("PER", "O", 3), Seg("DTM", "O", 10), Seg("CUR"),
        )),
    )),
    Loop("CTT", "O", 1, (Seg("CTT", "M"), Seg("AMT", "O", 12))),
    Seg("SE", "M"),
)

TABLES = {"810": TABLE_810, "867": TABLE_867}


def _where(i: int, tags: Sequence[str]) -> str:
    return f"segment {i + 1} ({tags[i]})" if i < len(tags) else "the end of the set"


def _walk(items: Sequence[Seg | Loop], tags: Sequence[str], pos: int, context: str) -> int:
    """Match one pass over ``items`` from ``pos``; return the position after it."""
    k = 0
    used = [0] * len(items)
    while pos < len(tags):
        tag = tags[pos]
        j = next((j for j in range(k, len(items)) if items[j].tag == tag), None)
        if j is None:
            break  # not at this level (or after it): the enclosing level decides
        for skipped in range(k, j):
            if items[skipped].req == "M" and used[skipped] == 0:
                raise X12OrderError(f"{context}: mandatory {items[skipped].tag} missing before {_where(pos, tags)}")
        item = items[j]
        if used[j] >= item.max:
            raise X12OrderError(f"{context}: {_where(pos, tags)} exceeds the maximum use of {item.max}"
                                + (f" for loop {item.name}" if isinstance(item, Loop) else ""))
        if isinstance(item, Loop):
            pos = _walk(item.body, tags, pos, f"{context} loop {item.name}")
        else:
            pos += 1
        used[j] += 1
        k = j if isinstance(item, Loop) or item.max > 1 else j + 1
    for rest in range(k, len(items)):
        if items[rest].req == "M" and used[rest] == 0:
            kind = "loop" if isinstance(items[rest], Loop) else "segment"
            raise X12OrderError(f"{context}: mandatory {kind} {items[rest].tag} missing before {_where(pos, tags)}")
    return pos


def check_order(set_id: str, segments: Sequence[Sequence[str]]) -> None:
    """Raise :class:`X12OrderError` unless ``segments`` (ST..SE, split into elements) follow the table."""
    table = TABLES.get(set_id)
    if table is None:
        raise X12OrderError(f"no 004010 table for transaction set {set_id}")
    tags = [s[0] for s in segments]
    end = _walk(table, tags, 0, f"{set_id}")
    if end != len(tags):
        raise X12OrderError(f"{set_id}: {_where(end, tags)} is out of order or not part of the set")
