"""The shared per-period shortcuts of settlement give what the per-run code gives.

``share_row_statistics`` (one pass over a period's matrix for all its runs) against the
statistics computed per run, and ``canonical_json`` (orjson when it writes the same bytes)
against the standard library.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pytest

from kwhub.core.campus import Campus, Channel, Party
from kwhub.core.intervals import IntervalMatrix
from kwhub.core.settlement import (
    SettlementError,
    _json_default,
    _refuse_corrupt,
    canonical_json,
    channel_stats,
    missing_report,
    share_row_statistics,
)


def _campus(n: int) -> Campus:
    return Campus(parties=[Party(id="t", name="T")],
                  channels=[Channel(id=f"c{i}", party="t", role="tenant_load", max_kw=30.0 if i == 1 else None)
                            for i in range(n)])


def _matrix(values: np.ndarray, quality: np.ndarray | None = None) -> IntervalMatrix:
    q = np.zeros(values.shape, np.uint8) if quality is None else quality
    return IntervalMatrix([f"c{i}" for i in range(values.shape[0])], 1_767_225_600, 15, values, q)


def _both(values: np.ndarray, quality: np.ndarray | None = None, ids: list[str] | None = None):
    camp = _campus(values.shape[0])
    ids = ids or [f"c{i}" for i in range(values.shape[0])]
    plain = _matrix(values.copy(), None if quality is None else quality.copy())
    shared = _matrix(values.copy(), None if quality is None else quality.copy())
    share_row_statistics(shared)
    return ((channel_stats(camp, plain, ids), missing_report(plain, ids)),
            (channel_stats(camp, shared, ids), missing_report(shared, ids)))


def test_shared_statistics_equal_per_run_ones_with_gaps_and_flags() -> None:
    rng = np.random.default_rng(3)
    v = rng.integers(0, 50, (6, 96)).astype(float)
    v[2, 5:9] = np.nan  # a gap
    v[3, :] = np.nan  # no data at all
    v[4, 10] = 99.0  # the peak
    q = np.zeros(v.shape, np.uint8)
    q[1, 3:6] = 1  # estimated
    q[5, 7] = 3  # suspect
    plain, shared = _both(v, q)
    assert plain == shared
    assert shared[1] == {"c2": 4, "c3": 96}
    # one run's channels picked from the shared statistics
    plain, shared = _both(v, q, ["c4", "c2"])
    assert plain == shared


def test_shared_statistics_over_many_row_blocks_of_a_span_view() -> None:
    """The statistics are made a block of rows at a time, on a period's view of a longer span:
    each row's figures and the matrix's bounds are those of the whole-matrix reductions, with
    gaps in some blocks, a block without any number and rows in the last, partial block."""
    rng = np.random.default_rng(7)
    span = rng.integers(0, 80, (45, 400)).astype(float) + rng.random((45, 400))
    span[3, 150:160] = np.nan
    span[16:32, :] = np.nan  # a whole block of rows without data
    span[40, 101] = -5.0  # the smallest number, in the last block
    view = span[:, 100:300]  # a period of the span: rows are strided
    q = np.zeros(span.shape, np.uint8)[:, 100:300]
    plain, shared = _both(view, q)
    assert plain == shared
    m = _matrix(view, q)
    share_row_statistics(m)
    facts = m.__dict__["_row_facts"]
    with np.errstate(invalid="ignore"):
        assert float(np.fmin.reduce(view, axis=None)) == -5.0
    assert facts.kwh[0] == view[0].sum() and facts.kwh[3] == np.nansum(view[3])
    assert facts.missing.tolist() == [0, 0, 0, 10] + [0] * 12 + [200] * 16 + [0] * 13
    assert not facts.clean and facts.sane


def test_shared_statistics_still_refuse_an_absurd_value() -> None:
    v = np.full((4, 96), 10.0)
    v[2, 40] = 1e13
    m = _matrix(v)
    share_row_statistics(m)
    with pytest.raises(SettlementError, match="c2"):
        _refuse_corrupt(m, ["c0", "c2"], "here")
    _refuse_corrupt(m, ["c0", "c1"], "here")  # the other channels are fine
    v = np.full((3, 96), 10.0)
    v[1, 3] = -1e13
    v[0, 7] = np.nan
    m = _matrix(v)
    share_row_statistics(m)
    with pytest.raises(SettlementError, match="c1"):
        _refuse_corrupt(m, ["c1"], "here")


@pytest.mark.parametrize("obj", [
    {"b": "x", "a": [1, True, None, "é\n\u2028"], "c": {"z": Decimal("1.50"), "y": date(2026, 1, 2)}},
    {"a": 1.5, "b": 1e-05, "c": 1e16},  # floats: the standard library's spelling
    {"a": float("nan")},
    {"a": np.float64(2.5), "b": np.int64(3)},
    {"a": datetime(2026, 1, 1, tzinfo=UTC)},
    {2: "int keys", 10: "sorted as ints"},
    {"a": 10 ** 30},
])
def test_canonical_json_is_the_standard_librarys_bytes(obj: dict) -> None:
    ref = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    assert canonical_json(obj) == ref.encode("utf-8")
    assert canonical_json(obj, float_free=("a",)) == ref.encode("utf-8") or any(
        isinstance(v, float) for v in obj.values())


def test_statement_sections_skipped_by_the_float_check_hold_no_float() -> None:
    """``settle_contract`` tells ``canonical_json`` which statement sections it need not look through
    for floats: lines and document only while no line carries emissions; the bytes stay the
    standard library's."""
    from kwhub.core.invoice import InvoiceLine
    from kwhub.core.settlement import line_json
    from kwhub.hub.settle.service import _float_free

    line = InvoiceLine(number=1, description="Energy on-peak", quantity=Decimal("5923.914"), unit="MWh",
                       unit_price=Decimal("62.500000"), amount=Decimal("370244.63"), component_id="tou",
                       period_start=date(2026, 1, 1), determinants={"energy_kwh": "5923914.0"})
    plain = _float_free([line], [line])
    assert plain == ("channels", "inputs", "lines", "document")
    statement = {"lines": [line_json(line)], "document": {"kind": "invoice", "lines": [line_json(line)], "taxes": []},
                 "inputs": {"count": 3, "channels": ["a"], "digest": "x"}, "channels": {"a": {"kwh": "1.0"}},
                 "determinants": {"peak_kw": "1.5"}}
    ref = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    assert canonical_json(statement, float_free=plain) == ref.encode("utf-8")
    carried = line.model_copy(update={"emissions": object()})  # any emissions: the lines are looked through
    assert _float_free([line], [carried]) == _float_free([carried], []) == ("channels", "inputs")
