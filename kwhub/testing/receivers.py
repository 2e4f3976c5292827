"""Receivers for transport checks: what arrived at the other end, document by document.

A receiver answers :meth:`Receiver.deliveries`: the SHA-256 of every copy of a document it
imported, oldest first; an ERP that sees a document once has one entry. Two ship with the
kit:

* :class:`WebhookReceiver`, a local ERP endpoint on loopback
  (:class:`kwhub.hub.demo.erp_receiver.ErpReceiver`: it checks the HMAC signature and, as
  an ERP would, imports a repeated ``Idempotency-Key`` only once);
* :class:`FolderReceiver`, a folder an ERP watches (the folder-drop and SFTP transports'
  target): a file written again, even with the same bytes, is a new file event for the
  watcher and counts as a second delivery.

A transport for another kind of ERP comes with a receiver of its own that implements
``deliveries``; :func:`kwhub.testing.check_transport` needs nothing else.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

from kwhub.core.adapters import OutgoingDocument


class Receiver(Protocol):
    """The receiving end of a transport under test."""

    def deliveries(self, doc: OutgoingDocument) -> list[str]:
        """SHA-256 (hex) of each copy of ``doc`` imported so far, oldest first."""
        ...


class WebhookReceiver:
    """A local ERP webhook endpoint on 127.0.0.1 that imports each idempotency key once.

    Use it as a context manager; give the transport ``url`` and ``secret``
    (:meth:`transport_config`).
    """

    def __init__(self, secret: str = "kwhub-kit-receiver-secret", *, dedupe: bool = True) -> None:
        from kwhub.hub.demo.erp_receiver import ErpReceiver

        self.secret = secret
        self.erp = ErpReceiver(secret=secret, dedupe=dedupe)

    @property
    def url(self) -> str:
        return self.erp.url

    def transport_config(self, **extra: Any) -> dict[str, Any]:
        """Settings of an ``erp.webhook`` instance that posts here."""
        return {"url": self.url, "secret": self.secret, "read_timeout_s": 5.0, **extra}

    def start(self) -> WebhookReceiver:
        self.erp.start()
        return self

    def stop(self) -> None:
        self.erp.stop()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def deliveries(self, doc: OutgoingDocument) -> list[str]:
        return [r["sha256"] for r in self.erp.records
                if r.get("accepted") and r["idempotency_key"] == doc.idempotency_key]


class FolderReceiver:
    """A folder an ERP watches: every time a document's file appears or is replaced is a delivery.

    A file is looked at when :meth:`deliveries` is called, so call it after every send
    (the transport check does).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._seen: dict[str, list[tuple[tuple[int, int, int], str]]] = {}

    def deliveries(self, doc: OutgoingDocument) -> list[str]:
        from kwhub.hub.helpers.transports import safe_filename

        name = safe_filename(doc.filename)
        history = self._seen.setdefault(name, [])
        path = self.folder / name
        if path.is_file():
            st = path.stat()
            identity = (st.st_ino, st.st_mtime_ns, st.st_size)
            if not history or history[-1][0] != identity:
                history.append((identity, hashlib.sha256(path.read_bytes()).hexdigest()))
        return [digest for _, digest in history]
