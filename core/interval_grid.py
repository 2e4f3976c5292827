"""The interval grid's basic rules, free of numpy: allowed lengths, UTC day edges and the
error every interval check raises.

:mod:`kwhub.core.intervals` (the canonical interval frame) re-exports all of it; this
module exists so that configuration loading and the read commands, which need the rules
but no arrays, start without importing numpy.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

SECONDS_PER_DAY = 86_400
ALLOWED_INTERVAL_MINUTES = (1, 5, 10, 15, 30, 60)
MAX_CHANNEL_ID = 200  # characters; the store's channel id columns hold no more


class IntervalDataError(ValueError):
    """Interval data that cannot be accepted (wrong length, misaligned, bad arrays).

    ``source`` names the file or device, ``where`` the line/element, ``field`` the field.
    """

    def __init__(self, message: str, *, source: str = "", where: str = "", field: str = "") -> None:
        self.source = source
        self.where = where
        self.field = field
        self.reason = message
        parts = [p for p in (source, where) if p]
        prefix = ":".join(parts)
        if field:
            prefix = f"{prefix} [{field}]" if prefix else f"[{field}]"
        super().__init__(f"{prefix}: {message}" if prefix else message)


def slots_per_day(interval_minutes: int) -> int:
    """Number of intervals in one UTC day for an interval length."""
    if interval_minutes not in ALLOWED_INTERVAL_MINUTES:
        raise IntervalDataError(
            f"interval length {interval_minutes} min is not one of {ALLOWED_INTERVAL_MINUTES}",
            field="interval_minutes",
        )
    return 1440 // interval_minutes


def day_start_epoch(day: date) -> int:
    """UTC epoch seconds of 00:00 UTC on ``day``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def epoch_to_day(epoch_s: int) -> date:
    """UTC calendar day of an epoch-seconds instant."""
    return datetime.fromtimestamp(int(epoch_s) - int(epoch_s) % SECONDS_PER_DAY, tz=UTC).date()
