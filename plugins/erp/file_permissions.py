"""The ``file_mode`` setting of the transports that write files (``erp.folder``, ``erp.sftp``):
checked when the configuration loads, and read as permission bits.

Each transport declares the field itself, with :data:`~kwhub.hub.helpers.transports.DEFAULT_FILE_MODE`
as its default, where it stands among its own settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import field_validator

from kwhub.core.adapters import AdapterConfig
from kwhub.hub.helpers.transports import parse_file_mode


class FileModeConfig(AdapterConfig):
    """A transport configuration with a ``file_mode`` field (e.g. ``"0640"``: the group reads)."""

    if TYPE_CHECKING:  # declared by each transport, so that it keeps its place among the settings
        file_mode: str | int

    @field_validator("file_mode", check_fields=False)
    @classmethod
    def _valid_mode(cls, v: str | int) -> str | int:
        parse_file_mode(v)
        return v

    @property
    def mode(self) -> int:
        """``file_mode`` as permission bits."""
        return parse_file_mode(self.file_mode)
