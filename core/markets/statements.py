"""ISO statement versions: every version kept, a later one read as deltas.

An operating day is settled several times (initial, final, true-up, and a resettlement
after a price correction). Each version is kept as the ISO sent it;
:func:`statement_deltas` lines a version up against the one before it per code, resource
and interval (previous, current, net), the way CIM's ``MarketStatementLineItem`` carries
current, previous and net amounts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from kwhub.core.markets.models import STATEMENT_ORDER, DeltaLine, Statement, StatementLine

LineKey = tuple[str, str, int]  # code, resource, UTC start epoch


def line_key(line: StatementLine) -> LineKey:
    return line.code, line.resource, int(line.start.timestamp())


def index_lines(lines: Iterable[StatementLine]) -> dict[LineKey, StatementLine]:
    """Statement lines by (code, resource, start); a repeated key is an error in the statement."""
    out: dict[LineKey, StatementLine] = {}
    for ln in lines:
        key = line_key(ln)
        if key in out:
            raise ValueError(f"statement has two {ln.code} lines for {ln.resource} at {ln.label or ln.start}")
        out[key] = ln
    return out


def statement_deltas(previous: Statement, current: Statement) -> list[DeltaLine]:
    """Per code, resource and interval: what ``current`` changed against ``previous``.

    Lines present in only one version count as 0.00 in the other; unchanged lines are left out.
    """
    if (previous.iso, previous.operating_day) != (current.iso, current.operating_day):
        raise ValueError("statement versions of different ISOs or operating days cannot be compared")
    old, new = index_lines(previous.lines), index_lines(current.lines)
    out: list[DeltaLine] = []
    zero = Decimal("0.00")
    for key in sorted(set(old) | set(new), key=lambda k: (k[0], k[1], k[2])):
        a, b = old.get(key), new.get(key)
        prev = a.amount if a else zero
        cur = b.amount if b else zero
        if prev == cur:
            continue
        ref = b or a
        assert ref is not None
        out.append(DeltaLine(code=key[0], resource=key[1], start=ref.start, label=ref.label, previous=prev,
                             current=cur))
    return out


def ordered_versions(statements: Sequence[Statement]) -> list[Statement]:
    """Versions oldest first: by kind (initial < final < true-up < resettlement), then as given."""
    return [s for _, _, s in sorted((STATEMENT_ORDER[s.kind], n, s) for n, s in enumerate(statements))]
