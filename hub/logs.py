"""Structured logs of the running service: one JSON object per line on standard error.

Each line has ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg`` and the ``extra``
fields a call passed (``job``, ``run``, ``owner``, ``path``, ``status``, ``ms``, ``key``...);
an exception adds ``error`` and ``traceback``. ``[service] log_format = "text"`` prints
the same as plain lines.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                               "level": record.levelname.lower(), "logger": record.name,
                               "msg": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}" if record.exc_info[0] else ""
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(fmt: str = "json", level: str = "info") -> None:
    """Send kwhub's, uvicorn's and APScheduler's logs to standard error in ``fmt``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    lvl = getattr(logging, level.upper())
    for name in ("kwhub", "uvicorn", "uvicorn.error", "apscheduler"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(lvl if name != "apscheduler" else max(lvl, logging.WARNING))
        logger.propagate = False
