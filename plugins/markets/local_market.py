"""What the local ISOs on 127.0.0.1 (CAISO, PJM) share: the loopback server's life cycle,
prices per node with real-time price corrections, the meter data a statement settles, and
the statement files of a day (an initial statement, plus a resettlement once a price of
that day was corrected) answered as one zip.

Each local ISO keeps its own endpoints, documents and statement lines.
"""

from __future__ import annotations

import io
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Self

from kwhub.core.markets.hour_labels import DayGrid
from kwhub.hub.helpers.loopback import LoopbackServer, Reply

PriceSource = Callable[..., Sequence[Decimal]]  # (node, day, market "DA" | "RT") -> a price per interval
MeterSource = Callable[[str, date], Sequence[Decimal]]  # (resource, day) -> MWh per 5 minutes


class LocalMarket(ABC):
    """A local ISO: ``start()`` it and use ``url``; ``corrections[(node, day)][interval] = price``
    corrects a real-time price (the resettlement carries it)."""

    def __init__(self, tz: str, flat_price: Decimal, prices: PriceSource | None = None,
                 meter: MeterSource | None = None, port: int = 0) -> None:
        self.prices: PriceSource = prices or (
            lambda node, day, market: [flat_price] * len(DayGrid(day, tz, 60 if market == "DA" else 5)))
        self.meter = meter
        self.port = port
        self.url = ""
        self.corrections: dict[tuple[str, date], dict[int, Decimal]] = {}
        self._server: LoopbackServer | None = None

    def start(self) -> Self:
        """Serve on the loopback interface (``port`` 0: any free port); ``url`` says where."""
        self._server = LoopbackServer(self._handle, port=self.port).start()
        self.url = self._server.url
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.stop()

    @abstractmethod
    def _handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
                body: bytes) -> Reply:
        """The local ISO's answer to one request (each ISO its own endpoints and documents)."""

    def price_list(self, node: str, day: date, market: str, latest: bool = True) -> list[Decimal]:
        """The prices of ``node`` on ``day``; real-time ones with their corrections when ``latest``."""
        vals = list(self.prices(node, day, market))
        if latest and market == "RT":
            for i, p in self.corrections.get((node, day), {}).items():
                vals[i] = p
        return vals

    def meter_of(self, resource: str, day: date, intervals: int) -> list[Decimal]:
        """The metered MWh of ``resource`` per 5 minutes of ``day`` (zeros without meter data)."""
        return list(self.meter(resource, day)) if self.meter else [Decimal(0)] * intervals

    def statement_files(self, prefix: str, day: date, render: Callable[[str, bool], bytes]) -> dict[str, bytes]:
        """``render(kind, latest)`` as the day's ``INITIAL`` file, plus a ``RESETTLEMENT`` with the
        corrected prices when a price of ``day`` was corrected."""
        out = {f"{prefix}-{day:%Y%m%d}-INITIAL.csv": render("INITIAL", False)}
        if any(d == day for _, d in self.corrections):
            out[f"{prefix}-{day:%Y%m%d}-RESETTLEMENT.csv"] = render("RESETTLEMENT", True)
        return out


def zip_reply(files: dict[str, bytes], media_type: str = "application/zip") -> Reply:
    """A 200 answer holding ``files`` as one zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return Reply(200, buf.getvalue(), media_type)
