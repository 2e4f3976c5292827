"""A small independent X12 reader used by the tests to round-trip 810/867 output.

It reads the separators from the ISA itself (element separator at position 3, sub-element
separator at 104, segment terminator at 105), splits segments, and checks the envelope:
ISA is 106 characters, ISA13 = IEA02, IEA01 = number of groups, GS06 = GE02, GE01 = number
of transaction sets, ST02 = SE02 and SE01 = segments from ST to SE inclusive.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class X12ParseError(ValueError):
    """The interchange is malformed."""


@dataclass
class Transaction:
    set_id: str
    control: str
    segments: list[list[str]] = field(default_factory=list)  # ST..SE inclusive

    def all(self, tag: str) -> list[list[str]]:
        return [s for s in self.segments if s[0] == tag]

    def first(self, tag: str) -> list[str]:
        found = self.all(tag)
        if not found:
            raise X12ParseError(f"no {tag} segment in {self.set_id}")
        return found[0]


@dataclass
class Group:
    functional_id: str
    control: str
    transactions: list[Transaction] = field(default_factory=list)


@dataclass
class Interchange:
    isa: list[str]
    element_sep: str
    sub_sep: str
    terminator: str
    groups: list[Group] = field(default_factory=list)

    @property
    def control(self) -> str:
        return self.isa[13]


def parse(data: bytes) -> Interchange:
    """Parse and envelope-check an interchange; raise :class:`X12ParseError` on any defect."""
    text = data.decode("ascii")
    if not text.startswith("ISA") or len(text) < 106:
        raise X12ParseError("no ISA segment")
    es, ss, term = text[3], text[104], text[105]
    isa_text = text[:105]
    isa = isa_text.split(es)
    if len(isa) != 17:
        raise X12ParseError(f"ISA has {len(isa) - 1} elements, expected 16")
    widths = [3, 2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1]
    for i, (value, width) in enumerate(zip(isa, widths, strict=True)):
        if len(value) != width:
            raise X12ParseError(f"ISA{i:02d} is {len(value)} characters wide, expected {width}")
    raw = [s.strip() for s in text.split(term)]
    segments = [s.split(es) for s in raw if s]
    inter = Interchange(isa=isa, element_sep=es, sub_sep=ss, terminator=term)
    pos = 1
    while segments[pos][0] == "GS":
        gs = segments[pos]
        group = Group(functional_id=gs[1], control=gs[6])
        pos += 1
        while segments[pos][0] == "ST":
            st = segments[pos]
            tx = Transaction(set_id=st[1], control=st[2])
            while segments[pos][0] != "SE":
                tx.segments.append(segments[pos])
                pos += 1
                if pos >= len(segments):
                    raise X12ParseError("ST without SE")
            se = segments[pos]
            tx.segments.append(se)
            if int(se[1]) != len(tx.segments):
                raise X12ParseError(f"SE01 {se[1]} != {len(tx.segments)} segments")
            if se[2] != st[2]:
                raise X12ParseError(f"SE02 {se[2]} != ST02 {st[2]}")
            group.transactions.append(tx)
            pos += 1
        ge = segments[pos]
        if ge[0] != "GE":
            raise X12ParseError(f"expected GE, found {ge[0]}")
        if int(ge[1]) != len(group.transactions):
            raise X12ParseError(f"GE01 {ge[1]} != {len(group.transactions)} sets")
        if ge[2] != group.control:
            raise X12ParseError(f"GE02 {ge[2]} != GS06 {group.control}")
        inter.groups.append(group)
        pos += 1
    iea = segments[pos]
    if iea[0] != "IEA":
        raise X12ParseError(f"expected IEA, found {iea[0]}")
    if int(iea[1]) != len(inter.groups):
        raise X12ParseError(f"IEA01 {iea[1]} != {len(inter.groups)} groups")
    if iea[2] != isa[13]:
        raise X12ParseError(f"IEA02 {iea[2]} != ISA13 {isa[13]}")
    if pos != len(segments) - 1:
        raise X12ParseError("segments after IEA")
    return inter
