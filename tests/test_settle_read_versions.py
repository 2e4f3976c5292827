"""The versions a settlement read records (``load_span``): from the read itself for channels
it saw at version 1 on every day, else looked up after the read and compared with what was
read (a day restated in between refuses the read)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from kwhub.core.campus import Campus, Channel, Party
from kwhub.core.intervals import ChannelSeries, DayHashes, day_start_epoch
from kwhub.core.settlement import SettlementError, SettlementOptions
from kwhub.core.timeline import Span
from kwhub.hub.settle.loading import load_span
from kwhub.hub.store import Database

D0 = date(2025, 3, 1)
SPAN = Span(datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 8, tzinfo=UTC))


def _series(cid: str, days: list[int], scale: float) -> ChannelSeries:
    starts = np.concatenate([day_start_epoch(D0 + timedelta(days=d)) + 900 * np.arange(96) for d in days])
    return ChannelSeries(cid, 15, starts.astype(np.int64), np.full(starts.size, scale), np.zeros(starts.size, np.uint8))


def _setup(db: Database) -> Campus:
    db.intervals.write_series([_series(c, list(range(7)), 1.0) for c in ("a", "b", "d")], layer="validated", source="t")
    db.intervals.write_series([_series("d", [2, 4], 2.0)], layer="validated", source="t2")  # d: days 2, 4 at version 2
    return Campus(parties=[Party(id="p", name="P")],
                  channels=[Channel(id=c, party="p", role="tenant_load") for c in ("a", "b", "d")])


def test_versions_are_those_of_the_full_lookup(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    camp = _setup(db)
    quick = load_span(db, camp, SPAN, ["a", "b", "d"], SettlementOptions()).inputs
    with monkeypatch.context() as m:  # the lookup of every channel's versions, as before
        m.setattr(DayHashes, "restated_channels", lambda self: None)
        full = load_span(db, camp, SPAN, ["a", "b", "d"], SettlementOptions()).inputs
    assert bytes(quick.buffer) == bytes(full.buffer)
    assert np.array_equal(quick.versions, full.versions)
    d0 = (D0 - date(1970, 1, 1)).days
    restated = {(quick.channel_ids[c], int(d) - d0): int(v)
                for c, d, v in zip(quick.ch, quick.days, quick.versions, strict=True) if v != 1}
    assert restated == {("d", 2): 2, ("d", 4): 2}


def test_a_restated_channel_restated_again_during_the_read_is_refused(db: Database,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    camp = _setup(db)
    real = type(db.intervals).read_matrix

    def then_restate(self: Any, *args: Any, **kw: Any) -> Any:
        m = real(self, *args, **kw)
        db.intervals.write_series([_series("d", [4], 3.0)], layer="validated", source="t3")  # version 3
        return m

    monkeypatch.setattr(type(db.intervals), "read_matrix", then_restate)
    with pytest.raises(SettlementError, match="data changed while it was read"):
        load_span(db, camp, SPAN, ["a", "b", "d"], SettlementOptions())


def test_a_channel_read_at_version_1_records_what_was_read(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A day of a channel read at version 1 everywhere, restated after the read: the read
    records version 1 and the digest of what it read (one snapshot), not the later version
    (both stores' joined reads report the highest version of each channel read)."""
    camp = _setup(db)
    before = {b.day: b.content_hash() for b in db.intervals.read_blocks("a", D0, D0 + timedelta(days=6), layer="validated")}
    real = type(db.intervals).read_matrix

    def then_restate(self: Any, *args: Any, **kw: Any) -> Any:
        m = real(self, *args, **kw)
        db.intervals.write_series([_series("a", [3], 5.0)], layer="validated", source="late")
        return m

    monkeypatch.setattr(type(db.intervals), "read_matrix", then_restate)
    loaded = load_span(db, camp, SPAN, ["a", "b", "d"], SettlementOptions())
    t = loaded.inputs
    a = t.pos["a"]
    rows = np.flatnonzero(t.ch == a)
    day3 = (D0 + timedelta(days=3) - date(1970, 1, 1)).days
    i = int(rows[t.days[rows] == day3][0])
    assert int(t.versions[i]) == 1 and t.hashes[i] == before[D0 + timedelta(days=3)]
    assert np.allclose(loaded.values[loaded.channel_ids.index("a")], 1.0)  # the values read, not the late ones


def test_day_hashes_know_versions_only_of_what_was_noted() -> None:
    h = DayHashes()
    h.add("a", np.array([1, 2]), "x" * 64 + "," + "y" * 64)
    assert h.restated_channels() is None  # versions not seen
    h.note_versions("a", False)
    h.add("b", np.array([1]), ["z" * 64])
    h.note_versions("b", True)
    assert h.restated_channels() == {"b"}
    assert h[("a", date(1970, 1, 3))] == "y" * 64
    other = DayHashes()
    other.add("c", np.array([5]), ["w" * 64])  # versions not seen
    merged = DayHashes()
    merged.update(h)
    assert merged.restated_channels() == {"b"} and dict(merged) == dict(h)
    merged.update(other)
    assert merged.restated_channels() is None
    h.add("a", np.array([3]), ["v" * 64])  # more days of a: its versions unknown again
    assert h.restated_channels() is None
