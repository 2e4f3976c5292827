"""A small local ERP webhook receiver for the demo, the tests and the delivery benchmark.

It listens on 127.0.0.1 (ephemeral port by default), accepts ``POST /invoices`` as an ERP
import endpoint would, verifies the ``X-Kwhub-Signature`` HMAC (its own implementation of
the scheme documented in :mod:`kwhub.plugins.erp.webhook`) and appends one JSON line per request
to a record file. In *dedupe* mode a repeated ``Idempotency-Key`` is answered ``200`` with
``Idempotent-Replayed: true`` and not imported again; without dedupe every request is
imported (a naive ERP). It can be told to misbehave: answer a status code, answer slowly,
or drop the connection, for the next requests (:meth:`ErpReceiver.script`) or always
(:meth:`ErpReceiver.fail_always`).

Run it standalone: ``python -m kwhub.hub.demo.erp_receiver --record received.jsonl --secret s3cret``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import signal
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

INVOICE_PATH = "/invoices"
HEALTH_PATH = "/health"
SIGNATURE_HEADER = "X-Kwhub-Signature"


def verify_signature(secret: str, body: bytes, header: str, tolerance_s: float = 300.0,
                     now: float | None = None) -> str:
    """Return "" when ``header`` is a valid, fresh signature of ``body``, else the reason."""
    fields: dict[str, str] = {}
    for part in header.split(","):
        k, sep, v = part.strip().partition("=")
        if sep:
            fields[k] = v
    if "t" not in fields or "v1" not in fields:
        return "malformed signature header"
    try:
        ts = int(fields["t"])
    except ValueError:
        return "signature timestamp is not an integer"
    if abs((now if now is not None else time.time()) - ts) > tolerance_s:
        return "signature timestamp outside the tolerance"
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["v1"]):
        return "signature mismatch"
    return ""


class ErpReceiver:
    """An in-process ERP endpoint; use as a context manager or call start()/stop()."""

    def __init__(self, record_path: str | Path | None = None, *, secret: str | None = None, dedupe: bool = True,
                 host: str = "127.0.0.1", port: int = 0, tolerance_s: float = 300.0,
                 body_dir: str | Path | None = None) -> None:
        self.record_path = Path(record_path) if record_path else None
        self.secret = secret
        self.dedupe = dedupe
        self.host = host
        self.port = port
        self.tolerance_s = tolerance_s
        self.body_dir = Path(body_dir) if body_dir else None
        self._lock = threading.Lock()
        self._script: deque[str] = deque()
        self._always: str | None = None
        self._seen: set[str] = set()
        self._records: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if self.record_path and self.record_path.exists():  # a restarted receiver remembers what it has
            for rec in self.read_records(self.record_path):
                self._records.append(rec)
                if rec.get("accepted"):
                    self._seen.add(rec["idempotency_key"])

    # -- control ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The invoice endpoint."""
        return self.base_url + INVOICE_PATH

    @property
    def health_url(self) -> str:
        return self.base_url + HEALTH_PATH

    def script(self, *actions: int | str) -> None:
        """Queue behaviours for the next POSTs: a status code (``503``), ``"slow:2.5"``
        (answer normally after 2.5 s) or ``"drop"`` (close without answering)."""
        with self._lock:
            self._script.extend(str(a) for a in actions)

    def fail_always(self, action: int | str | None) -> None:
        """Apply ``action`` to every POST once the script is used up (None = behave)."""
        with self._lock:
            self._always = None if action is None else str(action)

    def start(self) -> ErpReceiver:
        handler = type("Handler", (_Handler,), {"receiver": self})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="erp-receiver",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> ErpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what arrived ----------------------------------------------------------------------
    @property
    def records(self) -> list[dict[str, Any]]:
        """Every request recorded so far (including rejected ones), oldest first."""
        with self._lock:
            return list(self._records)

    def imported(self) -> Counter[str]:
        """How many times each idempotency key was imported (accepted, not replayed)."""
        return Counter(r["idempotency_key"] for r in self.records if r.get("accepted"))

    @staticmethod
    def read_records(path: str | Path) -> list[dict[str, Any]]:
        """The records in a JSON-lines record file."""
        p = Path(path)
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]

    # -- request handling (called from handler threads) -------------------------------------
    def _next_action(self) -> str | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
            return self._always

    def _record(self, rec: dict[str, Any]) -> None:
        with self._lock:
            self._records.append(rec)
            if self.record_path is not None:
                with self.record_path.open("a") as fh:
                    fh.write(json.dumps(rec, sort_keys=True) + "\n")

    def _accept(self, key: str, body: bytes, filename: str) -> tuple[bool, bool]:
        """Return (imported, replayed) for a verified request."""
        with self._lock:
            seen = key in self._seen
            if self.dedupe and seen:
                return False, True
            self._seen.add(key)
        if self.body_dir is not None:
            self.body_dir.mkdir(parents=True, exist_ok=True)
            safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in (filename or key))
            (self.body_dir / safe).write_bytes(body)
        return True, False


class _Handler(BaseHTTPRequestHandler):
    receiver: ErpReceiver
    protocol_version = "HTTP/1.1"
    server_version = "kwhub-erp-receiver/1"
    wbufsize = 1 << 16  # headers and body leave in one segment (flushed after each request)
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _reply(self, status: int, payload: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def _check_signature(self, body: bytes) -> str:
        secret = self.receiver.secret
        if not secret:
            return ""
        header = self.headers.get(SIGNATURE_HEADER)
        if not header:
            return "missing signature"
        return verify_signature(secret, body, header, self.receiver.tolerance_s)

    def _simple(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == HEALTH_PATH:
            self._reply(200, {"ok": True})
            return
        if path != INVOICE_PATH:
            self._reply(404, {"error": f"no endpoint {path}"})
            return
        problem = self._check_signature(b"")
        if problem:
            self._reply(401, {"error": problem})
            return
        self._reply(204 if self.command == "OPTIONS" else 200, None, {"Allow": "POST, OPTIONS, HEAD"})

    do_GET = _simple
    do_HEAD = _simple
    do_OPTIONS = _simple

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        key = self.headers.get("Idempotency-Key", "")
        rec: dict[str, Any] = {
            "received_at": time.time(), "idempotency_key": key, "path": self.path,
            "content_type": self.headers.get("Content-Type", ""), "filename": self.headers.get("X-Kwhub-Filename", ""),
            "size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
            "accepted": False, "duplicate": False, "status": 0, "signature_ok": None,
            "peer_port": self.client_address[1],
        }
        action = self.receiver._next_action()
        if action == "drop":
            rec.update(status=0, action="drop")
            self.receiver._record(rec)
            self.close_connection = True
            return
        if action and action.startswith("slow:"):
            time.sleep(float(action.split(":", 1)[1]))
            rec["action"] = action
        elif action and action.isdigit():
            status = int(action)
            rec.update(status=status, action=action)
            self.receiver._record(rec)
            self._reply(status, {"error": f"scripted HTTP {status}", "key": key})
            return
        if self.path.split("?", 1)[0] != INVOICE_PATH:
            rec["status"] = 404
            self.receiver._record(rec)
            self._reply(404, {"error": f"no endpoint {self.path}"})
            return
        problem = self._check_signature(body)
        rec["signature_ok"] = not problem if self.receiver.secret else None
        if problem:
            rec["status"] = 401
            self.receiver._record(rec)
            self._reply(401, {"error": problem})
            return
        if not key:
            rec["status"] = 400
            self.receiver._record(rec)
            self._reply(400, {"error": "Idempotency-Key header is required"})
            return
        imported, replayed = self.receiver._accept(key, body, rec["filename"])
        rec.update(status=200, accepted=imported, duplicate=replayed)
        self.receiver._record(rec)
        if replayed:
            self._reply(200, {"duplicate": True, "key": key}, {"Idempotent-Replayed": "true"})
        else:
            self._reply(200, {"received": key})


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; print the invoice URL (and write it to ``--url-file``)."""
    ap = argparse.ArgumentParser(prog="python -m kwhub.hub.demo.erp_receiver", description=__doc__.splitlines()[0])
    ap.add_argument("--record", required=True, help="JSON-lines file to append received requests to")
    ap.add_argument("--secret", default=os.environ.get("KWHUB_RECEIVER_SECRET"), help="HMAC secret")
    ap.add_argument("--no-dedupe", action="store_true", help="import repeated idempotency keys again")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--url-file", help="write the invoice URL here once listening")
    ap.add_argument("--body-dir", help="save each imported body here")
    args = ap.parse_args(argv)
    rx = ErpReceiver(args.record, secret=args.secret, dedupe=not args.no_dedupe, port=args.port,
                     body_dir=args.body_dir).start()
    if args.url_file:
        tmp = Path(args.url_file + ".tmp")
        tmp.write_text(rx.url)
        os.replace(tmp, args.url_file)
    print(rx.url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    rx.stop()


if __name__ == "__main__":
    main()
