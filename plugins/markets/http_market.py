"""What the HTTP market adapters (CAISO, PJM, ERCOT) share: the request, its failure classes,
the reachability check, the curve-rule gate before a document is rendered, the submission
round trip and the zipped statement download.

Each ISO's configuration extends :class:`HttpMarketConfig` (``url``, ``nodes``, ``timeout_s``)
with its own settings; each keeps its documents and its reply parsing. Failures are classified once here: no answer in time or a
broken connection is transient, a 5xx answer is transient, a 4xx answer is a configuration
problem. An ISO whose gateway answers throttling with an HTML page adds that rule in its own
:meth:`HttpMarket._check_status`.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpx
from lxml import etree

from kwhub.core.adapters import AdapterConfig, AdapterError, CheckResult, FailureKind, MarketAdapter
from kwhub.core.markets.curve_rules import CurveRuleError, check_bid
from kwhub.core.markets.models import Bid, BidOutcome, Statement, Submission, SubmissionStatus
from kwhub.core.markets.rules import rules_for
from kwhub.hub.helpers.safe_xml import UnsafeXmlError, parse_xml


class HttpMarketConfig(AdapterConfig):
    """Where the ISO (or the local one) answers, which price nodes to fetch, and how long to wait."""

    url: str
    nodes: list[str] = []
    timeout_s: float = 10.0


def overall_status(outcomes: Iterable[BidOutcome]) -> SubmissionStatus:
    """One status for a submission: all alike -> that status, mixed -> partial, none -> rejected."""
    statuses = {o.status for o in outcomes}
    if len(statuses) > 1:
        return SubmissionStatus.PARTIAL
    return statuses.pop() if statuses else SubmissionStatus.REJECTED


class HttpMarket(MarketAdapter):
    """A market adapter that talks to one ISO endpoint over HTTP (``config.url``, ``config.timeout_s``)."""

    config: HttpMarketConfig

    def _request(self, method: str, path: str, what: str, **kw: Any) -> httpx.Response:
        """``method`` on ``url + path``; a failure raises :class:`AdapterError` naming the ISO and ``what``."""
        try:
            r = httpx.request(method, self.config.url.rstrip("/") + path, timeout=self.config.timeout_s, **kw)
        except httpx.TimeoutException:
            raise AdapterError(f"{self.iso} {what}: no answer within {self.config.timeout_s} s (retry later)",
                               FailureKind.TRANSIENT) from None
        except httpx.HTTPError as exc:
            raise AdapterError(f"{self.iso} {what}: {exc}", FailureKind.TRANSIENT) from None
        self._check_status(r, what)
        return r

    def _check_status(self, r: httpx.Response, what: str) -> None:
        """A 5xx answer is transient, a 4xx answer a configuration problem."""
        if r.status_code >= 500:
            raise AdapterError(f"{self.iso} {what}: HTTP {r.status_code} (retry later)", FailureKind.TRANSIENT)
        if r.status_code >= 400:
            raise AdapterError(f"{self.iso} {what}: HTTP {r.status_code}: {r.text[:200]}", FailureKind.CONFIGURATION)

    def check(self) -> CheckResult:
        """The endpoint answers (any HTTP status)."""
        try:
            httpx.get(self.config.url, timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            return CheckResult.failure(FailureKind.TRANSIENT, f"{self.config.url}: {exc}")
        return CheckResult.success(f"{self.config.url} answers")

    def _check_curves(self, bids: Sequence[Bid], tz: str) -> None:
        """Raise :class:`CurveRuleError` for the first bid that breaks its market's curve rules."""
        for bid in bids:
            found = check_bid(bid, rules_for(self.iso, bid.market), tz)
            if found:
                raise CurveRuleError(bid.bid_id, found)

    def _send_document(self, bids: Sequence[Bid], document: str, path: str, what: str, content_type: str,
                       reply: str) -> tuple[bytes, etree._Element]:
        """Render ``bids``, refuse a document with offline problems, POST it and parse the XML reply.

        Returns the document sent and the root of the reply; an unsafe or broken reply is transient.
        """
        data = self.render_bids(bids)
        problems = self.validate_document(data)
        if problems:
            raise AdapterError(f"the {document} is not valid: " + "; ".join(problems[:5]), FailureKind.SYSTEM)
        r = self._request("POST", path, what, content=data, headers={"Content-Type": content_type})
        try:
            return data, parse_xml(r.content, reply)
        except UnsafeXmlError as exc:
            raise AdapterError(str(exc), FailureKind.TRANSIENT) from None

    def _submission_of(self, bids: Sequence[Bid], data: bytes, outcomes: Sequence[BidOutcome],
                    **fields: Any) -> Submission:
        """The :class:`Submission` of ``bids`` sent as ``data``, its status from the ``outcomes``."""
        first = bids[0]
        return Submission(iso=self.iso, market=first.market, trading_date=first.trading_date,
                          status=overall_status(outcomes), document_sha256=hashlib.sha256(data).hexdigest(),
                          outcomes=tuple(outcomes), **fields)

    def poll_status(self, submission: Submission) -> Submission:
        """The gateway validates synchronously: the reply to the submission is final."""
        return submission

    def _zipped_statements(self, r: httpx.Response, parse: Callable[[bytes, str], Statement]) -> list[Statement]:
        """The statements of a zip answer, one per member, in name order."""
        z = zipfile.ZipFile(io.BytesIO(r.content))
        return [parse(z.read(n), n) for n in sorted(z.namelist())]
