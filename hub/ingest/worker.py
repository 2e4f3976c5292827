"""A large file's ingest on two cores: a forked process parses and runs VEE rules while this one writes.

On one process the parse, the VEE engine and the SQLite writes take turns (threads do not
help: all of them hold the GIL for most of their work). :class:`IngestWorker` is a child
process, forked before the file's write transaction begins, with two jobs in turn:

1. it runs the adapter's chunk iterator (``iter_file``: the parse) and sends each batch
   of whole days through a pipe (pickled arrays) while this process checks and writes
   the batch before; at most one batch waits in the pipe and one is being parsed, so
   memory stays bounded by the chunk size. Its error (a bad cell) is raised here, where
   the streamed path then reads the file whole and names the cell as usual;
2. after the raw days are stored, it runs
   :meth:`~kwhub.core.vee.VeeEngine.validate_dense` for the channels
   :func:`kwhub.hub.ingest.vee.validate_days` hands it (arrays and context pickled),
   while this process writes the channel before.

Both compute what the serial path computes from the same inputs in the same order, so
what is stored is byte for byte what the serial path stores.

The worker is only started where forking is safe and pays: the ``fork`` start method
exists, the process runs no other thread (the SQLite checkpoint thread is paused around
the fork), the file is large (the streamed path), and ``workers`` (``kwhub ingest
--workers``, ``KWHUB_INGEST_WORKERS``) is not 1. The child never touches the database: it
inherited the parent's connections but uses none and leaves with ``os._exit``.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

ENV_WORKERS = "KWHUB_INGEST_WORKERS"


#: processes when neither the caller nor ``KWHUB_INGEST_WORKERS`` says: two (capped at the
#: machine's cores). On the 2-core reference machine, quiet (bench/ingest_csv.py, 10M
#: intervals, one and two processes alternated in the same minutes) two processes took
#: 3.9-5.1 s against 4.8-6.1 s for one: the worker takes ~2.5 s of CPU (parse, engine) off
#: this process and adds ~1.2 s of its own (pickling, the pipe). On a machine already busy
#: with other work that extra CPU is not free: there ``--workers 1`` can be the faster choice
AUTO_WORKERS = 2


def resolve_workers(workers: int | None) -> int:
    """The number of processes an ingest may use: ``workers`` when given and positive, else
    the ``KWHUB_INGEST_WORKERS`` environment variable, else ``AUTO_WORKERS``; never more
    than the machine's cores."""
    if workers is None or workers <= 0:
        raw = os.environ.get(ENV_WORKERS, "").strip()
        try:
            workers = int(raw) if raw else 0
        except ValueError:
            workers = 0
    if workers <= 0:
        workers = AUTO_WORKERS
    return max(1, min(workers, os.cpu_count() or 1))


class IngestWorker:
    """A forked child that parses a file's chunks, then validates channels with the VEE engine.

    :meth:`batches` yields the parsed chunks (when started with ``chunks``); :meth:`submit` sends one channel's inputs (it never blocks on the child: a thread in
    the child takes the jobs off the pipe), :meth:`result` returns the oldest job's
    outcome (or raises its error). :meth:`close` ends the child. Start it with
    :meth:`start`, which returns None where it cannot run.
    """

    def __init__(self, process: Any, conn: Any) -> None:
        self._process = process
        self._conn = conn
        self._engines = 0  # engine configurations sent so far
        self.in_flight = 0

    @classmethod
    def start(cls, db: Any = None, workers: int | None = None,
              chunks: Iterator[Any] | None = None) -> IngestWorker | None:
        """A running worker, or None (one worker requested, no ``fork``, other threads running).

        ``chunks``: an iterator not yet started (a generator: nothing of it runs here) that
        the child runs; its batches come out of :meth:`batches`."""
        import multiprocessing as mp

        if resolve_workers(workers) < 2 or "fork" not in mp.get_all_start_methods():
            return None
        ctx = mp.get_context("fork")
        with _checkpoint_paused(db):
            if threading.active_count() != 1:
                return None
            parent, child = ctx.Pipe(duplex=True)
            _widen(parent, child)
            process = ctx.Process(target=_serve, args=(child, chunks), name="kwhub-ingest-worker", daemon=True)
            process.start()
        child.close()
        return cls(process, parent)

    def batches(self) -> Iterator[Any]:
        """The batches the child parses, in order; its error (a bad cell) raises here."""
        while True:
            try:
                kind, got = self._conn.recv()
            except EOFError:
                raise RuntimeError("the ingest worker process ended unexpectedly") from None
            if kind == "end":
                return
            if kind == "error":
                raise got
            yield got

    def engine(self, config: Any) -> int:
        """Send an engine configuration (the rules come from the plugin registry); its key."""
        self._engines += 1
        self._conn.send(("engine", self._engines, config))
        return self._engines

    def submit(self, engine: int, channel: Any, days: list[Any], frame_values: np.ndarray,
               frame_quality: np.ndarray, at: np.ndarray, ctx: Any) -> None:
        """Validate one channel in the child: ``VeeEngine.validate_dense(channel, days,
        frame_values[at], frame_quality[at], ctx, compact=True)`` (the target days are cut
        from the frame there: the frame usually travels once, as the context's history too)."""
        self._conn.send(("job", engine, channel, days, frame_values, frame_quality, at, ctx))
        self.in_flight += 1

    def result(self, values: np.ndarray, quality: np.ndarray) -> Any:
        """The oldest job's :class:`~kwhub.core.vee.VeeOutcome` (its error raises here);
        ``values`` and ``quality``: that job's target days (the child sends only the days the
        rules changed, see :func:`_pack`)."""
        try:
            ok, got = self._conn.recv()
        except EOFError:
            raise RuntimeError("the ingest worker process ended unexpectedly") from None
        finally:
            self.in_flight -= 1
        if not ok:
            raise got
        return _unpack(got, values, quality)

    def close(self) -> None:
        """End the child (jobs still in flight are dropped)."""
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        self._conn.close()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


#: socket buffer asked for each way (the kernel caps it at net.core.wmem_max / rmem_max):
#: a job or an outcome fits whole, so neither side waits for the other to be scheduled
#: to take a few hundred kB at a time
PIPE_BUFFER_BYTES = 4 << 20


def _widen(*conns: Any) -> None:
    import socket

    for conn in conns:
        try:
            sock = socket.socket(fileno=os.dup(conn.fileno()))
        except OSError:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, PIPE_BUFFER_BYTES)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PIPE_BUFFER_BYTES)
        except OSError:
            pass
        finally:
            sock.close()


@contextmanager
def _checkpoint_paused(db: Any) -> Iterator[None]:
    pause = getattr(getattr(db, "checkpointer", None), "paused", None)
    if pause is None:
        yield
        return
    with pause():
        yield


def _rows_changed(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Rows of ``new`` whose bytes differ from ``old``'s (NaN payloads and signed zeros included)."""
    return np.flatnonzero((new.view(np.uint8) != old.view(np.uint8)).reshape(len(new), -1).any(axis=1))


def _pack(outcome: Any, values: np.ndarray, quality: np.ndarray) -> Any:
    """The outcome to send: when its dense days are the target days, only the rows the
    rules changed (values, quality) and the rows with rule ids travel; else all of it."""
    out = getattr(outcome, "dense", None)
    if (out is None or getattr(outcome, "_validated", None) is not None or out.values.shape != values.shape
            or out.values.dtype != values.dtype or out.quality.dtype != quality.dtype
            or out.quality.shape != quality.shape or out.rule_ids.shape != quality.shape):
        return ("whole", outcome)
    changed = np.union1d(_rows_changed(out.values, values), _rows_changed(out.quality, quality))
    ruled = np.flatnonzero(out.rule_ids.reshape(len(out.rule_ids), -1).any(axis=1))
    rest = dataclasses.replace(out, values=out.values[changed], quality=out.quality[changed],
                               rule_ids=out.rule_ids[ruled])
    return ("changed", outcome.events, rest, changed, ruled, out.rule_ids.dtype)


def _unpack(got: Any, values: np.ndarray, quality: np.ndarray) -> Any:
    """The outcome :func:`_pack` sent, whole again (the unchanged rows from the target days)."""
    if got[0] == "whole":
        return got[1]
    from kwhub.core.vee import VeeOutcome

    _, events, rest, changed, ruled, ids_dtype = got
    v, q = values.copy(), quality.copy()
    v[changed] = rest.values
    q[changed] = rest.quality
    ids = np.zeros(quality.shape, dtype=ids_dtype)
    ids[ruled] = rest.rule_ids
    return VeeOutcome(events=events, dense=dataclasses.replace(rest, values=v, quality=q, rule_ids=ids))


def _send_error(conn: Any, kind: str, exc: BaseException) -> None:
    try:
        conn.send((kind, exc))
    except (OSError, ValueError):  # the parent has gone (it stopped reading)
        raise
    except Exception as why:  # noqa: BLE001 - an error that does not pickle
        conn.send((kind, RuntimeError(f"ingest worker: {type(exc).__name__}: {exc} ({why})")))


def _parse(conn: Any, chunks: Iterator[Any]) -> None:
    """The child's first job: run the chunk iterator, each batch to the parent."""
    try:
        for batch in chunks:
            conn.send(("batch", batch))
        conn.send(("end", None))
    except (BrokenPipeError, ConnectionResetError):
        raise
    except BaseException as exc:  # noqa: BLE001 - the parent raises it
        _send_error(conn, "error", exc)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _serve(conn: Any, chunks: Iterator[Any] | None = None) -> None:
    """The child: the parse first (when given), then the engine: a thread takes jobs off the
    pipe (so the parent's sends never wait for the engine), the main thread runs them in
    order and sends each outcome back."""
    from kwhub.core.vee import VeeEngine

    if chunks is not None:
        try:
            _parse(conn, chunks)
        except (BrokenPipeError, ConnectionResetError):
            return
    jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def read() -> None:
        try:
            while True:
                msg = conn.recv()
                jobs.put(msg)
                if msg is None:
                    return
        except (EOFError, OSError):
            jobs.put(None)

    threading.Thread(target=read, daemon=True).start()
    engines: dict[int, Any] = {}
    while True:
        msg = jobs.get()
        if msg is None:
            return
        if msg[0] == "engine":
            try:
                from kwhub.hub.registry import get_registry

                engines[msg[1]] = VeeEngine(get_registry().vee_rules, msg[2])
            except BaseException as exc:  # noqa: BLE001 - reported with the jobs that need it
                engines[msg[1]] = exc
            continue
        _, key, channel, days, frame_values, frame_quality, at, ctx = msg
        engine = engines[key]
        try:
            if isinstance(engine, BaseException):
                raise engine
            values, quality = frame_values[at], frame_quality[at]
            outcome = engine.validate_dense(channel, days, values, quality, ctx, compact=True)
            reply: tuple[bool, Any] = (True, _pack(outcome, values, quality))
        except BaseException as exc:  # noqa: BLE001 - the parent raises it
            reply = (False, exc)
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - an error that does not pickle
            conn.send((False, RuntimeError(f"VEE worker: {type(exc).__name__}: {exc}")))
