"""Built-in invoice transports: HTTPS webhook, SFTP upload and folder drop.

This module is the ``erp_transports`` entry point; the transports live in their own
modules (:mod:`kwhub.plugins.erp.webhook`, :mod:`kwhub.plugins.erp.sftp`,
:mod:`kwhub.plugins.erp.folder_drop`). The outbox (:mod:`kwhub.hub.deliver.outbox`) drives them.
"""

from __future__ import annotations

from kwhub.core.hookspecs import Register, hookimpl
from kwhub.hub.helpers.transports import RetrySettings, TransportResult
from kwhub.plugins.erp.folder_drop import FolderDropTransport
from kwhub.plugins.erp.sftp import SftpTransport
from kwhub.plugins.erp.webhook import WebhookTransport, sign_body

__all__ = [
    "FolderDropTransport", "RetrySettings", "SftpTransport", "TransportResult", "WebhookTransport", "sign_body",
]


@hookimpl
def kwhub_register_erp_adapters(register: Register) -> None:
    """Register the three built-in transports."""
    register(WebhookTransport)
    register(SftpTransport)
    register(FolderDropTransport)
