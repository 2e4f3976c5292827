"""Full garbage collections held off while a large file is ingested.

An ingest builds hundreds of thousands of short-lived tuples and bytes per batch (day rows,
blobs, digests); the collector's allocation counters then trigger a full (oldest-generation)
collection every few batches, and each walks every live object of the process (the plugin
registry, SQLAlchemy, pandas: 0.15-0.25 s apiece, 0.4-0.7 s of CPU in a 10M-interval ingest). The
ingest makes almost no cyclic garbage that outlives the young generations (a full
collection during it finds none or a few dozen objects), so :func:`full_collections_paused`
raises the oldest generation's threshold for the span and restores it after; the young
generations are collected as usual, so memory is not held by cycles made in the span.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, ...] = ()
#: the oldest generation's threshold while paused (never reached in one ingest)
_PAUSED = 1 << 30


@contextmanager
def full_collections_paused() -> Iterator[None]:
    """Hold off full collections for the ``with`` block (nested and concurrent uses share one
    pause; the thresholds are restored when the last one ends)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            if len(_saved) >= 3:
                gc.set_threshold(_saved[0], _saved[1], _PAUSED)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and len(_saved) >= 3:
                if gc.get_threshold()[2] == _PAUSED:  # nobody else changed them meanwhile
                    gc.set_threshold(*_saved)
