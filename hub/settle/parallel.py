"""Settling one campus on several cores: its contracts split in parts, one process per part.

A settle is Python work (pricing, statements, hashing) around SQLite or PostgreSQL reads,
so threads would take turns on the interpreter; processes do not. With ``jobs`` above one,
:func:`~kwhub.hub.settle.service.settle_periods` splits the contracts into parts of about
equal channel count (:func:`split_contracts`), settles the first part itself and each other
part in a forked child process that opens its own connection to the same database
(:func:`run_parts`). Every part runs the ordinary settle code with issuing left out, so each
child writes its runs and drafts as a serial settle would; the parent then issues every draft
in the order one serial call would have (same invoice numbers, documents and outbox rows).

Forking is used only where it is safe and pays (:func:`parallel_plan`): a database other
processes can open (a SQLite file or PostgreSQL, not ``:memory:``), a platform with
``fork``, at least two contracts, and enough channel-intervals (``MIN_PARALLEL_CELLS``) for
the fork to be worth its few milliseconds. A child's progress reaches the parent's
``progress`` callback through the same pipe as its outcomes. A child that raises has its
exception raised in the parent once every part has finished; a child that dies is reported
as a :class:`~kwhub.core.settlement.SettlementError` naming its contracts. Nothing is issued
in either case; the drafts already written wait, as after a failed serial settle.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from multiprocessing.connection import Connection
from typing import Any

from kwhub.core.settlement import SettlementError

MIN_PARALLEL_CELLS = 4_000_000  # channel-intervals below which one process is faster than forking
MAX_DEFAULT_JOBS = 4

Progress = Callable[[str], None]
RunPart = Callable[[Any, list[str], Progress | None], list[Any]]


def default_jobs() -> int:
    """The processes a settle uses when the caller does not say: the CPUs this process may run on
    (at most ``MAX_DEFAULT_JOBS``)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_JOBS, usable))


def shareable(db: Any) -> bool:
    """Whether another process can open ``db`` by its URL (PostgreSQL, or a SQLite file)."""
    from sqlalchemy.engine import make_url

    url = make_url(db.url)
    if url.get_backend_name() == "postgresql":
        return True
    path = url.database or ""
    return bool(path) and path != ":memory:" and "mode=memory" not in path and url.query.get("mode") != "memory"


def split_contracts(sizes: Sequence[tuple[str, int]], parts: int) -> list[list[str]]:
    """``(contract id, channels)`` pairs split into at most ``parts`` groups of about equal channel
    count (largest first, each to the lightest group); each group keeps the given order."""
    groups: list[list[str]] = [[] for _ in range(max(1, parts))]
    loads = [0] * len(groups)
    for cid, n in sorted(sizes, key=lambda item: -item[1]):
        i = loads.index(min(loads))
        groups[i].append(cid)
        loads[i] += max(1, n)
    order = {cid: i for i, (cid, _) in enumerate(sizes)}
    return [sorted(g, key=order.__getitem__) for g in groups if g]


def parallel_plan(db: Any, jobs: int, sizes: Sequence[tuple[str, int]], cells: int) -> list[list[str]] | None:
    """The parts to settle in separate processes, or None when one process should do it all."""
    if jobs <= 1 or len(sizes) < 2 or cells < MIN_PARALLEL_CELLS:
        return None
    if "fork" not in multiprocessing.get_all_start_methods() or not shareable(db):
        return None
    if multiprocessing.current_process().daemon:  # a daemonic worker may not start processes
        return None
    parts = split_contracts(sizes, min(jobs, len(sizes)))
    return parts if len(parts) > 1 else None


class _Child:
    """One forked process settling one part; its pipe carries progress, then the outcome."""

    def __init__(self, ids: list[str], process: Any, conn: Connection) -> None:
        self.ids = ids
        self.process = process
        self.conn = conn
        self.result: list[Any] | None = None
        self.error: BaseException | None = None

    def drain(self, progress: Progress | None, *, block: bool) -> None:
        """Pass on the progress that arrived; with ``block`` wait until the child has finished."""
        while self.result is None and self.error is None and (block or self.conn.poll()):
            try:
                kind, payload = self.conn.recv()
            except (EOFError, OSError):
                self.process.join()
                self.error = SettlementError(
                    f"the process settling {', '.join(self.ids)} stopped before it finished (exit code "
                    f"{self.process.exitcode}); nothing was issued, the drafts it wrote wait: settle again")
                return
            if kind == "progress":
                if progress is not None:
                    progress(payload)
            elif kind == "done":
                self.result = payload
            else:
                self.error = payload


def _child_main(conn: Connection, url: str, ids: list[str], run: RunPart) -> None:
    from kwhub.hub.store import Database

    try:
        db = Database.open(url, migrate=False)
        try:
            result = run(db, ids, lambda cid: conn.send(("progress", cid)))
        finally:
            db.close()
        conn.send(("done", result))
    except BaseException as exc:  # noqa: BLE001  (everything goes back to the parent, which raises it)
        try:
            conn.send(("failed", exc))
        except Exception:  # noqa: BLE001  (the exception itself cannot be pickled)
            conn.send(("failed", SettlementError(f"settling {', '.join(ids)} failed: {type(exc).__name__}: {exc}")))
    finally:
        conn.close()


def run_parts(db: Any, parts: list[list[str]], run: RunPart, progress: Progress | None) -> list[Any]:
    """Run ``run(db, ids, progress)`` for every part: the first here, the others in forked
    children with their own connection; the outcomes of every part, in part order."""
    ctx = multiprocessing.get_context("fork")
    children: list[_Child] = []
    quiet = db.checkpointer.paused() if getattr(db, "checkpointer", None) is not None else nullcontext()
    try:
        with quiet:  # no checkpoint thread of ours, in SQLite or not, at the fork
            for ids in parts[1:]:
                receive, send = ctx.Pipe(duplex=False)
                process = ctx.Process(target=_child_main, args=(send, db.url, ids, run), name="kwhub-settle-part",
                                      daemon=True)
                process.start()
                send.close()
                children.append(_Child(ids, process, receive))

        def forwarded(cid: str) -> None:
            if progress is not None:
                progress(cid)
            for child in children:
                child.drain(progress, block=False)

        own = run(db, parts[0], forwarded)
    finally:
        for child in children:
            child.drain(progress, block=True)
            child.process.join()
            child.conn.close()
    for child in children:
        if child.error is not None:
            raise child.error
    return own + [o for child in children for o in (child.result or [])]
