"""ISO interval labels and the UTC line.

ISOs label intervals in local prevailing time: ERCOT by ``HourEnding`` 01..24 (plus
``DeliveryInterval`` 1-4 in real time) and a ``DSTFlag`` marking the repeated hour of the
long day, CAISO by ``OPR_HR`` (hour ending), statements by ``IntervalEnding`` ``hh:mm``
with a running interval number. :class:`DayGrid` lays one operating day out on the UTC
line (23, 24 or 25 hours) with every label beside each interval, so a parser maps a label
to its UTC start by lookup and a renderer writes the label of a UTC interval; nothing
guesses. The spring day has no hour ending 03 (local 02:00-03:00 does not exist); on the
fall-back day the second 01:00-02:00 is hour ending 02 again with ``DSTFlag=Y``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np

from kwhub.core.hour_ending import day_labels, offset_label
from kwhub.core.timeline import zone


class LabelError(ValueError):
    """An ISO label that names no interval of the operating day."""


@dataclass
class DayGrid:
    """One local operating day on a grid of ``minutes``-long intervals."""

    day: date
    tz: str
    minutes: int
    starts: np.ndarray = field(init=False)  # int64 UTC epoch seconds
    hour_ending: np.ndarray = field(init=False)  # int 1..24: wall-clock hour ending of the interval's hour
    interval_in_hour: np.ndarray = field(init=False)  # 1..60/minutes
    repeated: np.ndarray = field(init=False)  # bool: the second pass through a wall-clock hour (DST fall-back)
    ending: list[str] = field(init=False)  # local wall time of the interval end, "hh:mm", "24:00" at midnight
    offsets: list[str] = field(init=False)  # UTC offset of the interval start, "-05:00"

    def __post_init__(self) -> None:
        lab = day_labels(self.day, self.tz, self.minutes)  # the one hour-ending rule of kwhub.core.hour_ending
        self.starts = lab.starts
        self.hour_ending, self.interval_in_hour, self.repeated = lab.hour_ending, lab.interval_in_hour, lab.repeated
        wall = (lab.starts + lab.offset_s) % 86400  # local wall clock seconds of each start
        ends = [f"{w // 3600:02d}:{w % 3600 // 60:02d}" for w in wall[1:].tolist()]
        self.ending = [*ends, "24:00"] if len(wall) else []
        self.offsets = [offset_label(o) for o in lab.offset_s.tolist()]
        he, sub, rep = self.hour_ending, self.interval_in_hour, self.repeated
        self._index = {(int(h), int(k), bool(r)): i for i, (h, k, r) in enumerate(zip(he, sub, rep, strict=True))}

    def __len__(self) -> int:
        return len(self.starts)

    def index_of(self, hour_ending: int, interval: int = 1, repeated: bool = False, where: str = "") -> int:
        """Position of the interval with these labels; :class:`LabelError` when the day has none."""
        i = self._index.get((hour_ending, interval, repeated))
        if i is None:
            prefix = f"{where}: " if where else ""
            what = f"hour ending {hour_ending:02d}" + (f" interval {interval}" if self.minutes < 60 else "")
            if repeated:
                raise LabelError(f"{prefix}{what} is flagged as the repeated hour, but {self.day} in {self.tz} "
                                 "repeats no such hour")
            raise LabelError(f"{prefix}{what} does not exist on {self.day} in {self.tz} "
                             f"({len(self) * self.minutes // 60} hours)")
        return i

    def index_of_number(self, number: int, ending: str = "", where: str = "") -> int:
        """Position of the ``number``-th interval (1-based), checking its ``hh:mm`` ending label."""
        prefix = f"{where}: " if where else ""
        if not 1 <= number <= len(self):
            raise LabelError(f"{prefix}interval {number} is outside {self.day}'s {len(self)} intervals")
        if ending and ending != self.ending[number - 1]:
            raise LabelError(f"{prefix}interval {number} ends at {self.ending[number - 1]} on {self.day}, "
                             f"but is labelled {ending}")
        return number - 1

    def local_iso(self, i: int, end: bool = False) -> str:
        """The local time of interval ``i``'s start (or end) with its explicit UTC offset."""
        s = int(self.starts[i]) + (self.minutes * 60 if end else 0)
        local = datetime.fromtimestamp(s, tz=UTC).astimezone(zone(self.tz))
        return local.isoformat(timespec="seconds")

    def he_label(self, i: int) -> str:
        """``HE02`` (or ``HE02 DST`` for the repeated hour); real-time grids add ``.k``."""
        text = f"HE{int(self.hour_ending[i]):02d}"
        if self.minutes < 60:
            text += f".{int(self.interval_in_hour[i])}"
        return text + (" DST" if self.repeated[i] else "")

    def label(self, i: int) -> str:
        """A label naming the operating day and the ISO interval: ``2024-11-03 HE02 DST``."""
        return f"{self.day.isoformat()} {self.he_label(i)}"


def operating_day_of(epoch: int, tz: str) -> date:
    """The local operating day an interval start belongs to."""
    return datetime.fromtimestamp(int(epoch), tz=UTC).astimezone(zone(tz)).date()
