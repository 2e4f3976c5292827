"""The lineage of a settlement read (``InputTable``/``PeriodInputs``): the fixed-width byte
buffer gives the same lines, digests and packed rows as the line-per-string build, and the
digests are SHA-256 over the ``day|layer|version|hash`` lines written out by hand."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import pytest

from kwhub.hub.settle.inputs import InputTable, PeriodInputs, day_no

D0 = date(2026, 3, 1)


def _parts(versions: dict[tuple[str, date], int]) -> list:
    found = {(ch, D0 + timedelta(days=k)): hashlib.sha256(f"{ch}{k}".encode()).hexdigest()
             for ch in ("a", "b", "c") for k in range(6) if not (ch == "b" and k == 2)}
    return [("validated", found, versions)]


def _tables(versions: dict[tuple[str, date], int], monkeypatch: pytest.MonkeyPatch) -> tuple[InputTable, InputTable]:
    fast = InputTable(["a", "b", "c"], _parts(versions))
    with monkeypatch.context() as m:
        m.setattr(InputTable, "_fixed_width", lambda *a: False)
        slow = InputTable(["a", "b", "c"], _parts(versions))
    return fast, slow


@pytest.mark.parametrize("versions", [{}, {("a", D0 + timedelta(days=1)): 3}, {("c", D0): 12}])
def test_fixed_width_buffer_equals_the_string_lines(versions, monkeypatch) -> None:  # noqa: ANN001
    fast, slow = _tables(versions, monkeypatch)
    assert bytes(fast.buffer) == bytes(slow.buffer)
    assert list(fast.line_offsets) == list(slow.line_offsets)
    assert fast.lines == slow.lines
    assert fast.raw_hashes() == slow.raw_hashes() and fast.packed() == slow.packed()
    for first, last in ((0, 5), (1, 3)):
        pf = PeriodInputs(fast, day_no(D0) + first, day_no(D0) + last)
        ps = PeriodInputs(slow, day_no(D0) + first, day_no(D0) + last)
        assert pf.digests() == ps.digests()
        assert [pf.rows(c) for c in "abc"] == [ps.rows(c) for c in "abc"]
        assert pf.summary("abc") == ps.summary("abc")
        # by hand: sha256 over the channel's sorted lines in the period
        for ch in "abc":
            lines = sorted(f"{d.isoformat()}|validated|{versions.get((ch, d), 1)}|{h}\n"
                           for (c, d), h in _parts(versions)[0][1].items()
                           if c == ch and first <= (d - D0).days <= last)
            assert pf.digest(ch) == hashlib.sha256("".join(lines).encode()).hexdigest()


def test_mixed_widths_use_the_string_lines(monkeypatch) -> None:  # noqa: ANN001
    """Versions of different digit counts give lines of different widths: the string build."""
    calls = []
    real = InputTable._fixed_width

    def spy(self, *a):  # noqa: ANN001, ANN002, ANN202
        calls.append(real(self, *a))
        return calls[-1]

    monkeypatch.setattr(InputTable, "_fixed_width", spy)
    InputTable(["a", "b", "c"], _parts({}))
    InputTable(["a", "b", "c"], _parts({("c", D0): 12}))
    assert calls == [True, False]
