"""Copying SQLite's write-ahead log into the database file on a background thread.

In WAL mode a commit appends pages to ``kwhub.db-wal``; a *checkpoint* later copies them
into ``kwhub.db`` and syncs both files. By default SQLite runs that checkpoint inside the
commit that crosses 1,000 pages, so a bulk ingest pays for copying and syncing every
page it wrote before it can go on. kwhub's connections switch the automatic checkpoint
off and leave the work to :class:`WalCheckpointer`: after each write transaction the
store nudges it, and its own connection runs a ``PASSIVE`` checkpoint (which never
blocks readers or writers) while the next step of the work proceeds on the other core.
The thread also checks the log's size every few seconds, for commits made outside
``Database.write_transaction``. When the last connection closes, SQLite checkpoints
what is left.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

IDLE_CHECK_S = 5.0  # how often the thread looks at the log when nobody nudges it
IDLE_CHECK_BYTES = 16 * 1024 * 1024  # log size that triggers a checkpoint on that look


class WalCheckpointer:
    """A daemon thread that checkpoints one SQLite database file after its writes.

    ``nudge()`` after a commit; ``wait()`` returns once a checkpoint has run after the last
    nudge (the pages committed before it are in the database file, unless a reader's
    snapshot still needed them); ``stop()`` ends the thread.
    """

    def __init__(self, path: str | Path, busy_timeout_ms: int = 30_000) -> None:
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._cond = threading.Condition()
        self._requested = 0
        self._done = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.runs = 0  # checkpoints run (for tests and diagnostics)
        self.last_result: tuple[int, int, int] | None = None  # (busy, log frames, checkpointed frames)
        self.last_error: str | None = None

    def nudge(self) -> None:
        """Ask for a checkpoint of everything committed so far (starts the thread on first use)."""
        with self._cond:
            if self._stopping:
                return
            self._requested += 1
            if self._thread is None:
                self._start()
            self._cond.notify_all()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"kwhub-checkpoint:{Path(self.path).name}",
                                        daemon=True)
        self._thread.start()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No checkpoint thread inside the block (e.g. to fork a single-threaded process): the
        thread ends after the checkpoint in progress and starts again on the way out when a
        checkpoint was asked for and not yet run (else on the next nudge)."""
        with self._cond:
            stopped = self._stopping  # stop() ran: no thread, and none is started again
            thread = self._thread
            if not stopped:
                self._stopping = True
                self._cond.notify_all()
        if stopped:
            yield
            return
        if thread is not None:
            thread.join()
        with self._cond:
            self._thread = None
            self._stopping = False
        try:
            yield
        finally:
            with self._cond:
                if not self._stopping and self._thread is None and self._requested > self._done:
                    self._start()
                self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a checkpoint has run after the last nudge; False on timeout."""
        with self._cond:
            target = self._requested
            return self._cond.wait_for(lambda: self._done >= target or self._thread is None, timeout)

    def stop(self) -> None:
        """End the thread after the checkpoint in progress (pending nudges are dropped)."""
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join()
        with self._cond:
            self._thread = None
            self._done = self._requested
            self._cond.notify_all()

    def _run(self) -> None:
        con = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                              check_same_thread=False)
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping or self._requested > self._done, IDLE_CHECK_S)
                    if self._stopping:
                        return
                    target = self._requested
                    nudged = target > self._done
                if nudged or self._log_size() >= IDLE_CHECK_BYTES:
                    self._checkpoint(con)
                with self._cond:
                    self._done = max(self._done, target)
                    self._cond.notify_all()
        finally:
            con.close()

    def _checkpoint(self, con: sqlite3.Connection) -> None:
        try:
            row = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # e.g. the file was removed; the next commit nudges again
            self.last_error = str(exc)
            return
        self.runs += 1
        self.last_result = (int(row[0]), int(row[1]), int(row[2])) if row else None
        self.last_error = None

    def _log_size(self) -> int:
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return 0
