"""Per-value quality flags of interval data."""

from __future__ import annotations

from enum import IntEnum


class Quality(IntEnum):
    """Quality of one interval value, stored as one byte per value.

    Ordered so that a larger number is "worse"; when two sources disagree the
    better quality wins on merge.
    """

    VALID = 0
    ESTIMATED = 1
    EDITED = 2
    SUSPECT = 3
    MISSING = 4

    @property
    def label(self) -> str:
        return self.name.lower()


QUALITY_LABELS: dict[int, str] = {q.value: q.label for q in Quality}
