"""Built-in invoice transports: HTTPS webhook, SFTP upload and folder drop.

This module is the ``erp_transports`` entry point; the transports live in their own
modules (:mod:`plugins.erp.webhook`, :mod:`plugins.erp.sftp`,
:mod:`plugins.erp.folder_drop`). The outbox (:mod:`hub.outbox`) drives them.
"""

from __future__ import annotations

from core.hookspecs import Register, hookimpl
from plugins.erp.folder_drop import FolderDropTransport
from plugins.erp.sftp import SftpTransport
from plugins.erp.transport_base import RetrySettings, TransportResult
from plugins.erp.webhook import WebhookTransport

__all__ = ["FolderDropTransport", "RetrySettings", "SftpTransport", "TransportResult", "WebhookTransport"]


@hookimpl
def kwhub_register_erp_adapters(register: Register) -> None:
    """Register the three built-in transports."""
    register(WebhookTransport)
    register(SftpTransport)
    register(FolderDropTransport)
