"""Market price-file adapter: day-ahead and real-time LMPs from a CSV file.

The file has one row per (node, market, interval): ``interval_start`` (ISO 8601 with an
offset or ``Z``), ``node``, ``market`` (``DA`` or ``RT``), ``interval_minutes`` and
``lmp`` ($/MWh); optional ``energy``, ``congestion`` and ``loss`` components. Column
names are configurable. ``load_prices()`` gives float price series for reports;
``parse_prices(path)`` and ``fetch_prices(day, market)`` (the configured file, one
operating day in the hub's timezone) give the exact prices of the market family.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from kwhub.core.adapters import AdapterConfig, AdapterError, CheckResult, FailureKind, MarketAdapter
from kwhub.core.hookspecs import hookimpl
from kwhub.core.intervals import IntervalDataError
from kwhub.core.markets import PriceSeries
from kwhub.core.markets.fixed import PRICE_SCALE, FixedPointError, price_units
from kwhub.core.markets.prices import MarketPrices


class PriceFileConfig(AdapterConfig):
    """Where the price file is and how its columns are named."""

    path: str
    start_column: str = "interval_start"
    node_column: str = "node"
    market_column: str = "market"
    minutes_column: str = "interval_minutes"
    lmp_column: str = "lmp"
    nodes: list[str] = []
    iso: str = ""  # the ISO the prices come from (carried on the exact prices; "" when not one ISO)


class PriceFileMarket(MarketAdapter):
    """Loads day-ahead and real-time LMPs from a CSV price file."""

    type_id: ClassVar[str] = "markets.price_file"
    title: ClassVar[str] = "LMP price file (CSV)"
    capabilities: ClassVar[frozenset[str]] = frozenset({"prices"})
    Config = PriceFileConfig
    config: PriceFileConfig

    def _path(self) -> Path:
        p = Path(self.config.path)
        return p if p.is_absolute() else self.context.work_dir / p

    def check(self) -> CheckResult:
        path = self._path()
        if not path.exists():
            return CheckResult.failure(FailureKind.CONFIGURATION, f"{path} does not exist")
        try:
            header = pd.read_csv(path, nrows=0).columns
        except Exception as exc:
            return CheckResult.failure(FailureKind.CONFIGURATION, f"{path}: unreadable CSV: {exc}")
        c = self.config
        missing = [col for col in (c.start_column, c.node_column, c.market_column, c.minutes_column, c.lmp_column)
                   if col not in header]
        if missing:
            return CheckResult.failure(FailureKind.CONFIGURATION, f"{path}: missing columns {missing}")
        return CheckResult.success(f"{path.name}: columns ok")

    def load_prices(self) -> list[PriceSeries]:
        """Read the file into one :class:`PriceSeries` per (node, market)."""
        path = self._path()
        if not path.exists():
            raise AdapterError(f"price file {path} does not exist", FailureKind.CONFIGURATION)
        return self._read(path)

    def _read(self, path: Path) -> list[PriceSeries]:
        c = self.config
        df = pd.read_csv(path, dtype={c.node_column: str, c.market_column: str}, keep_default_na=False)
        for col in (c.start_column, c.node_column, c.market_column, c.minutes_column, c.lmp_column):
            if col not in df.columns:
                raise IntervalDataError(f"column {col!r} is missing", source=str(path), where="line 1", field=col)
        lmp = pd.to_numeric(df[c.lmp_column], errors="coerce")
        bad = lmp.isna()
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise IntervalDataError(f"not a number: {df[c.lmp_column].iloc[i]!r}", source=str(path),
                                    where=f"line {i + 2}", field=c.lmp_column)
        starts = pd.to_datetime(df[c.start_column], utc=True, errors="coerce", format="ISO8601")
        bad = starts.isna()
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise IntervalDataError(f"not an ISO 8601 timestamp with offset: {df[c.start_column].iloc[i]!r}",
                                    source=str(path), where=f"line {i + 2}", field=c.start_column)
        markets = df[c.market_column].str.upper()
        unknown = ~markets.isin(["DA", "RT"])
        if unknown.any():
            i = int(np.argmax(unknown.to_numpy()))
            raise IntervalDataError(f"market must be DA or RT, got {df[c.market_column].iloc[i]!r}",
                                    source=str(path), where=f"line {i + 2}", field=c.market_column)
        epoch = ((starts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)
        frame = pd.DataFrame({
            "node": df[c.node_column].to_numpy(), "market": markets.to_numpy(),
            "minutes": df[c.minutes_column].astype(int).to_numpy(), "start": epoch, "lmp": lmp.to_numpy(),
        })
        if c.nodes:
            frame = frame[frame["node"].isin(c.nodes)]
        out: list[PriceSeries] = []
        for (node, market), grp in frame.groupby(["node", "market"], sort=True):
            grp = grp.drop_duplicates("start", keep="last").sort_values("start")
            minutes = grp["minutes"].unique()
            if len(minutes) != 1:
                raise IntervalDataError(f"node {node} market {market} mixes interval lengths {sorted(minutes)}",
                                        source=str(path), field=c.minutes_column)
            out.append(PriceSeries(node=str(node), market=market, interval_minutes=int(minutes[0]),
                                   starts=grp["start"].to_numpy(np.int64), lmp=grp["lmp"].to_numpy(np.float64)))
        return out

    def parse_prices(self, path: Path) -> list[MarketPrices]:
        """Read a price file (this adapter's columns) into exact prices, one per (node, market).

        ``lmp`` values with more than five decimals are refused, naming line and field.
        """
        path = Path(path)
        if not path.exists():
            raise IntervalDataError("the price file does not exist", source=str(path))
        series = self._read(path)
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)[self.config.lmp_column]
        for i, text in enumerate(raw.tolist()):
            try:
                price_units(text.strip())
            except FixedPointError as exc:
                raise IntervalDataError(str(exc), source=str(path), where=f"line {i + 2}",
                                        field=self.config.lmp_column) from None
        return [MarketPrices(iso=self.config.iso, node=s.node, market=s.market, interval_minutes=s.interval_minutes,
                             starts=s.starts, price_units=np.rint(s.lmp * PRICE_SCALE).astype(np.int64),
                             source=str(path)) for s in series]

    def fetch_prices(self, trading_date: date, market: str = "DA") -> list[MarketPrices]:
        """The configured file's prices of one operating day (in the hub's timezone) and market."""
        zone = ZoneInfo(self.context.timezone)
        nxt = trading_date + timedelta(days=1)
        lo = int(datetime(trading_date.year, trading_date.month, trading_date.day, tzinfo=zone).timestamp())
        hi = int(datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).timestamp())
        out = []
        for p in self.parse_prices(self._path()):
            keep = (p.starts >= lo) & (p.starts < hi)
            if p.market == market and keep.any():
                out.append(MarketPrices(iso=p.iso, node=p.node, market=p.market, interval_minutes=p.interval_minutes,
                                        starts=p.starts[keep], price_units=p.price_units[keep], source=p.source))
        return out


@hookimpl
def kwhub_register_market_adapters(register):
    """Register the LMP price-file adapter."""
    register(PriceFileMarket)
