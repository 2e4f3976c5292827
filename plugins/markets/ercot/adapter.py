"""The ERCOT market adapter: EWS submissions, awards, SPP reports and statements.

Configuration (``[[adapters]] type = "markets.ercot"``): ``url`` of the EWS endpoint and
report server, the ``qse`` code, the ``timezone`` of the operating day (Central
prevailing time), the offer type (``ThreePartOffer`` for a physical resource,
``EnergyOnlyOffer`` at a settlement point), the price ``nodes`` to fetch, the
``resource`` of a single-resource QSE (used when a statement comes without its
extract) and the request ``timeout_s``.

Transport failures are classified: a timeout, a 5xx answer, or an HTTP 200 whose body is
an HTML page instead of SOAP are *transient* (retry later); a 4xx answer is a
*configuration* problem. An ISO that refuses a submission is not an error: the returned
:class:`~kwhub.core.markets.models.Submission` says ``rejected`` with ERCOT's reasons.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Literal

from lxml import etree

from kwhub.core.adapters import AdapterError, FailureKind
from kwhub.core.intervals import IntervalDataError
from kwhub.core.markets.models import Award, Bid, Statement, Submission, SubmissionStatus
from kwhub.core.markets.prices import MarketPrices
from kwhub.plugins.markets.ercot import ews
from kwhub.plugins.markets.ercot.reports import parse_spp_csv
from kwhub.plugins.markets.ercot.statements import parse_statement
from kwhub.plugins.markets.http_market import HttpMarket, HttpMarketConfig

MAX_BIDSET_BYTES = 3_000_000


class ErcotConfig(HttpMarketConfig):
    """Where ERCOT (or the local ERCOT) is and who the hub submits as."""

    qse: str = "QKWHUB"
    user_id: str = ""
    timezone: str = "America/Chicago"
    offer_type: Literal["ThreePartOffer", "EnergyOnlyOffer"] = "ThreePartOffer"
    resource: str = ""


class ErcotMarket(HttpMarket):
    """ERCOT: EWS BidSet/AwardSet over SOAP, NP4-190/NP6-905 SPPs, settlement statements."""

    type_id: ClassVar[str] = "markets.ercot"
    title: ClassVar[str] = "ERCOT (EWS, SPP reports, statements)"
    iso: ClassVar[str] = "ERCOT"
    capabilities: ClassVar[frozenset[str]] = frozenset({"bids", "rt_bids", "awards", "prices", "statements",
                                                        "local_server"})
    Config = ErcotConfig
    config: ErcotConfig

    # ------------------------------------------------------------------ transport

    def _post(self, action: str, message: Any, what: str) -> ews.Envelope:
        body = ews.soap_wrap(message)
        r = self._request("POST", "/ews", what, content=body,
                          headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": ews.SOAP_ACTIONS[action]})
        if "html" in r.headers.get("content-type", "").lower():
            raise AdapterError(f"ERCOT {what}: HTTP {r.status_code} with an HTML page instead of SOAP "
                               "(maintenance or throttling; retry later)", FailureKind.TRANSIENT)
        try:
            return ews.parse_message(ews.soap_unwrap(r.content, f"ERCOT {what} reply"), f"ERCOT {what} reply")
        except ews.EwsError as exc:
            raise AdapterError(str(exc), FailureKind.TRANSIENT) from None

    def _get(self, path: str, params: dict[str, str], what: str) -> bytes:
        r = self._request("GET", path, what, params=params)
        if "html" in r.headers.get("content-type", "").lower() or r.content.lstrip()[:15].lower().startswith(
                (b"<!doctype html", b"<html")):
            raise AdapterError(f"ERCOT {what}: HTTP {r.status_code} with an HTML page instead of the report "
                               "(maintenance or throttling; retry later)", FailureKind.TRANSIENT)
        return r.content

    # ------------------------------------------------------------------ bids

    def _message(self, bids: Sequence[Bid]) -> Any:
        markets = {b.market for b in bids}
        if len(markets) != 1:
            raise AdapterError(f"one submission carries one market, got {sorted(markets)}", FailureKind.CONFIGURATION)
        bs = ews.render_bidset(bids, qse=self.config.qse, tz=self.config.timezone, offer_type=self.config.offer_type)
        return ews.render_message("RequestMessage", "create", "BidSet", self.config.qse, user_id=self.config.user_id,
                                  message_id=str(uuid.uuid4()), market_type=ews.MARKET_TYPES[markets.pop()],
                                  trading_date=bids[0].trading_date, payload=[bs])

    def render_bids(self, bids: Sequence[Bid]) -> bytes:
        """The SOAP request that creates ``bids`` (curve rules checked first; ERCOT takes a
        BidSet of at most 3,000,000 bytes)."""
        self._check_curves(bids, self.config.timezone)
        message = self._message(bids)
        payload = message.find(f"{ews.M}Payload")
        size = sum(len(etree.tostring(el)) for el in (payload if payload is not None else []))
        if size > MAX_BIDSET_BYTES:
            raise AdapterError(f"the BidSet is {size:,} bytes; ERCOT takes at most {MAX_BIDSET_BYTES:,} "
                               "(submit fewer resources per message)", FailureKind.CONFIGURATION)
        return ews.soap_wrap(message)

    def validate_document(self, data: bytes) -> list[str]:
        try:
            msg = ews.soap_unwrap(data, "document")
        except ews.EwsError as exc:
            return [str(exc)]
        return ews.validate_message(msg)

    def submit(self, bids: Sequence[Bid]) -> Submission:
        data = self.render_bids(bids)
        problems = self.validate_document(data)
        if problems:
            raise AdapterError("the BidSet is not valid against ERCOT's schema: " + "; ".join(problems[:5]),
                               FailureKind.SYSTEM)
        msg = ews.soap_unwrap(data, "request")
        env = self._post("MarketTransactions", msg, "BidSet submission")
        return self._submission(bids[0], env, ews.document_sha256(data))

    def _submission(self, first: Bid, env: ews.Envelope, sha: str) -> Submission:
        outcomes = ews.parse_outcomes(env.payload[0], "reply") if env.payload else []
        statuses = {o.status for o in outcomes}
        if env.reply_code != "OK" and not any(s != SubmissionStatus.REJECTED for s in statuses):
            status = SubmissionStatus.REJECTED
        elif SubmissionStatus.REJECTED in statuses and len(statuses) > 1:
            status = SubmissionStatus.PARTIAL
        elif statuses == {SubmissionStatus.ACCEPTED}:
            status = SubmissionStatus.ACCEPTED
        elif statuses:
            status = min(statuses, key=lambda s: list(SubmissionStatus).index(s))
        else:
            status = SubmissionStatus.REJECTED
        return Submission(iso="ERCOT", market=first.market, trading_date=first.trading_date, status=status,
                          document_sha256=sha, iso_ref=",".join(o.iso_ref for o in outcomes if o.iso_ref),
                          outcomes=tuple(outcomes), messages=tuple(env.errors))

    def poll_status(self, submission: Submission) -> Submission:
        ids = [o.iso_ref for o in submission.outcomes if o.iso_ref]
        msg = ews.render_message("RequestMessage", "get", "BidSet", self.config.qse, user_id=self.config.user_id,
                                 message_id=str(uuid.uuid4()), market_type=ews.MARKET_TYPES[submission.market],
                                 trading_date=submission.trading_date, ids=ids)
        env = self._post("MarketInfo", msg, "BidSet status")
        polled = {o.iso_ref: o for o in (ews.parse_outcomes(env.payload[0], "reply") if env.payload else [])}
        outcomes = tuple(polled.get(o.iso_ref, o) for o in submission.outcomes)
        statuses = {o.status for o in outcomes}
        status = (SubmissionStatus.ACCEPTED if statuses == {SubmissionStatus.ACCEPTED} else
                  SubmissionStatus.PARTIAL if SubmissionStatus.ACCEPTED in statuses else submission.status)
        return submission.model_copy(update={"outcomes": outcomes, "status": status})

    # ------------------------------------------------------------------ awards, prices, statements

    def fetch_awards(self, trading_date: date, market: str = "DA") -> list[Award]:
        msg = ews.render_message("RequestMessage", "get", "AwardSet", self.config.qse, user_id=self.config.user_id,
                                 message_id=str(uuid.uuid4()), market_type=ews.MARKET_TYPES[market],
                                 trading_date=trading_date)
        env = self._post("MarketInfo", msg, "AwardSet")
        if env.reply_code != "OK":
            raise AdapterError(f"ERCOT AwardSet {trading_date}: {env.reply_code} {'; '.join(env.errors)}",
                               FailureKind.TRANSIENT)
        if not env.payload:
            return []
        return ews.parse_awardset(env.payload[0], f"ERCOT AwardSet {trading_date}", self.config.timezone)

    def fetch_prices(self, trading_date: date, market: str = "DA") -> list[MarketPrices]:
        report = "NP4-190-CD" if market == "DA" else "NP6-905-CD"
        data = self._get(f"/reports/{report}", {"deliveryDate": trading_date.isoformat()}, f"{report} {trading_date}")
        return parse_spp_csv(data, f"{report} {trading_date}", self.config.timezone, nodes=self.config.nodes)

    def fetch_statements(self, operating_day: date) -> list[Statement]:
        data = self._get("/reports/statements", {"operatingDay": operating_day.isoformat()},
                         f"statements {operating_day}")
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            raise AdapterError(f"ERCOT statements {operating_day}: the answer is not a zip file",
                               FailureKind.TRANSIENT) from None
        out = []
        names = set(zf.namelist())
        for name in sorted(n for n in names if n.endswith(".xml")):
            ext = name[:-4] + ".extract.csv"
            out.append(parse_statement(zf.read(name), name, self.config.timezone,
                                       extract=zf.read(ext) if ext in names else None, extract_source=ext,
                                       resource=self.config.resource))
        return out

    def parse_prices(self, path: Path) -> list[MarketPrices]:
        return parse_spp_csv(Path(path).read_bytes(), str(path), self.config.timezone, nodes=self.config.nodes)

    def parse_statement(self, path: Path) -> Statement:
        """A statement file; its extract is read from ``<name>.extract.csv`` beside it when present."""
        path = Path(path)
        ext = path.with_name(path.stem + ".extract.csv")
        if not path.exists():
            raise IntervalDataError("the statement file does not exist", source=str(path))
        return parse_statement(path.read_bytes(), str(path), self.config.timezone,
                               extract=ext.read_bytes() if ext.exists() else None, extract_source=str(ext),
                               resource=self.config.resource)

    def local_server(self, **options: Any) -> Any:
        """A local ERCOT (:class:`kwhub.plugins.markets.ercot.sim.ErcotSim`), not yet started."""
        from kwhub.plugins.markets.ercot.sim import ErcotSim

        return ErcotSim(tz=self.config.timezone, qse=self.config.qse, **options)
