"""The garbage collector held back during a settle is restored exactly as it was."""

from __future__ import annotations

import gc
import threading

import pytest

from kwhub.hub.helpers.gc_pause import YOUNG_THRESHOLD, collector_paused


@pytest.fixture(autouse=True)
def _collector_as_found():
    saved, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.set_threshold(*saved)
    (gc.enable if enabled else gc.disable)()
    gc.unfreeze()


def test_paused_then_restored():
    gc.set_threshold(700, 10, 10)
    with collector_paused():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_restored_when_the_block_raises():
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_nested_blocks_restore_once_at_the_outermost():
    gc.set_threshold(700, 10, 10)
    with collector_paused():
        with collector_paused():
            pass
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)  # the outer block still runs paused
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_threads_overlapping():
    gc.set_threshold(700, 10, 10)
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with collector_paused():
            inside.set()
            release.wait(5)

    t = threading.Thread(target=other)
    t.start()
    inside.wait(5)
    with collector_paused():
        pass
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)  # the other thread's block is still open
    release.set()
    t.join(5)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_disabled_collector_and_callers_freeze_left_alone():
    gc.set_threshold(700, 10, 10)
    gc.disable()
    with collector_paused():
        assert gc.get_threshold() == (700, 10, 10)
        assert not gc.isenabled()
    gc.enable()
    gc.freeze()
    frozen = gc.get_freeze_count()
    with collector_paused():
        pass
    assert gc.get_freeze_count() == frozen  # the caller's frozen objects stay frozen


def test_settle_periods_runs_with_the_collector_held_back(monkeypatch) -> None:
    from kwhub.hub.settle import service

    seen: list[int] = []
    monkeypatch.setattr(service, "_settle_periods", lambda *a, **k: seen.append(gc.get_threshold()[0]) or [])
    before = gc.get_threshold()
    assert service.settle_periods(None, None, ["2026-10"]) == []  # type: ignore[arg-type]
    assert seen == [max(YOUNG_THRESHOLD, before[0])] and gc.get_threshold() == before
