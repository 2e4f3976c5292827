"""Late values that only fill gaps update the current day; a changed value makes a new version."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np

from kwhub.core.intervals import ChannelSeries
from kwhub.core.quality import Quality

T0 = int(datetime(2026, 10, 5, tzinfo=UTC).timestamp())


def _series(slots, values):
    starts = T0 + 900 * np.asarray(slots, dtype=np.int64)
    return ChannelSeries("poll.m1", 15, starts, np.asarray(values, float), np.zeros(len(slots), np.uint8))


def test_polling_fills_a_day_in_place_and_marks_it_stale(db):
    db.intervals.write_series([_series([0, 1], [1.0, 2.0])], source="poll 1")
    rep = db.intervals.write_series([_series([2, 3], [3.0, 4.0])], source="poll 2")
    assert (rep.filled_days, rep.changed_days, rep.new_days) == (1, 0, 0)
    assert rep.stale == [("poll.m1", date(2026, 10, 5))]
    versions = db.intervals.history("poll.m1", date(2026, 10, 5))
    assert [b.version for b in versions] == [1]
    block = versions[0]
    assert block.values[:4].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert (block.quality[4:] == Quality.MISSING).all()
    again = db.intervals.write_series([_series([2, 3], [3.0, 4.0])])
    assert (again.unchanged_days, again.filled_days) == (1, 0)
    stored_hash = db.intervals.read_matrix(["poll.m1"], _span(), 15, layer="raw").day_hashes
    assert stored_hash[("poll.m1", date(2026, 10, 5))] == block.content_hash()


def test_changing_a_stored_value_still_makes_a_new_version(db):
    db.intervals.write_series([_series([0, 1], [1.0, 2.0])])
    rep = db.intervals.write_series([_series([1, 2], [2.5, 3.0])])  # slot 1 restated, slot 2 new
    assert (rep.changed_days, rep.filled_days) == (1, 0)
    versions = db.intervals.history("poll.m1", date(2026, 10, 5))
    assert [b.version for b in versions] == [1, 2]
    assert versions[0].values[1] == 2.0 and versions[1].values[1] == 2.5


def _span():
    from kwhub.core.timeline import Span

    return Span(datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 6, tzinfo=UTC))
