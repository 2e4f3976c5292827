"""The adapter contract shared by every plugin family.

An adapter class declares a unique ``type_id`` (``meters.csv``), a pydantic ``Config``
(``extra="forbid"``; secrets as :class:`~pydantic.SecretStr`, which may be given as an
environment reference ``"env:NAME"``), its ``capabilities`` and a :meth:`Adapter.check`
that really connects or reads and classifies a failure. Operators create *instances* of
an adapter type in ``kwhub.toml``: ``type`` + ``id`` + that type's config.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from kwhub.core.input_limits import InputLimits

if TYPE_CHECKING:
    from datetime import date

    from kwhub.core.disclosure import Disclosure
    from kwhub.core.intervals import IntervalBatch
    from kwhub.core.invoice import Invoice, PartyRef
    from kwhub.core.markets.models import Award, Bid, Statement, Submission
    from kwhub.core.markets.prices import MarketPrices
    from kwhub.core.render_context import RenderContext

ENV_PREFIX = "env:"


class FailureKind(StrEnum):
    """Why a check or an operation failed, which decides what to do about it."""

    CONFIGURATION = "configuration"  # fix the config; retrying will not help
    TRANSIENT = "transient"  # network blip, busy device; retry later
    SYSTEM = "system"  # bug or broken environment; needs a person


@dataclass
class CheckResult:
    """Outcome of :meth:`Adapter.check`."""

    ok: bool
    message: str = ""
    kind: FailureKind | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def success(cls, message: str = "ok", **details: Any) -> CheckResult:
        return cls(True, message, None, details)

    @classmethod
    def failure(cls, kind: FailureKind, message: str, **details: Any) -> CheckResult:
        return cls(False, message, kind, details)


class AdapterError(Exception):
    """An adapter operation failed; ``kind`` says whether to fix config, retry or escalate."""

    def __init__(self, message: str, kind: FailureKind = FailureKind.SYSTEM) -> None:
        super().__init__(message)
        self.kind = kind


_DEFER_SECRETS: ContextVar[bool] = ContextVar("kwhub_defer_secrets", default=False)


@contextmanager
def deferred_secrets() -> Iterator[None]:
    """Validate adapter configs without resolving ``"env:NAME"`` secrets (they stay references).

    Loading kwhub.toml validates every instance this way, so a command that never uses an
    instance (``kwhub invoices list``) does not need its secrets; the instance's config is
    resolved when it is used (:attr:`kwhub.hub.config.AdapterInstance.config`).
    """
    token = _DEFER_SECRETS.set(True)
    try:
        yield
    finally:
        _DEFER_SECRETS.reset(token)


def has_secret_references(config: BaseModel) -> bool:
    """Whether a config still holds an unresolved ``"env:NAME"`` secret."""
    for name, info in type(config).model_fields.items():
        if _is_secret(info.annotation):
            value = getattr(config, name, None)
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            if isinstance(raw, str) and raw.startswith(ENV_PREFIX):
                return True
    return False


def resolve_secret(value: Any) -> Any:
    """Resolve ``"env:NAME"`` to the environment variable's value (error if unset)."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if isinstance(raw, str) and raw.startswith(ENV_PREFIX):
        name = raw[len(ENV_PREFIX):]
        if name not in os.environ:
            raise ValueError(f"secret refers to environment variable {name}, which is not set")
        return os.environ[name]
    return value


class AdapterConfig(BaseModel):
    """Base of every adapter's ``Config``: unknown keys are errors, secrets resolve from env.

    :meth:`warnings` lists settings that are valid but weaken security or safety; the CLI
    prints them whenever the configuration is loaded.
    """

    model_config = ConfigDict(extra="forbid")

    def warnings(self) -> list[str]:
        """``"key: why it is risky"`` for each risky setting (none by default)."""
        return []

    @model_validator(mode="before")
    @classmethod
    def _resolve_env_secrets(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        if _DEFER_SECRETS.get():
            return out
        for name, info in cls.model_fields.items():
            if name in out and _is_secret(info.annotation):
                try:
                    out[name] = resolve_secret(out[name])
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        return out


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return SecretStr in getattr(annotation, "__args__", ())


@dataclass
class AdapterContext:
    """What the hub hands an adapter instance: where to work, what the campus looks like,
    and the limits input must stay within (``[ingest]``)."""

    work_dir: Path = field(default_factory=Path.cwd)
    channels: dict[str, Any] = field(default_factory=dict)  # channel id -> ChannelSpec
    timezone: str = "UTC"
    limits: InputLimits = field(default_factory=InputLimits)


class Adapter:
    """Base class of all adapters. Subclass one of the family bases below."""

    family: ClassVar[str] = ""
    type_id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    Config: ClassVar[type[AdapterConfig]] = AdapterConfig

    def __init__(self, instance_id: str, config: AdapterConfig | dict[str, Any] | None = None,
                 context: AdapterContext | None = None) -> None:
        self.instance_id = instance_id
        if config is None:
            config = {}
        self.config = config if isinstance(config, AdapterConfig) else self.Config.model_validate(config)
        self.context = context or AdapterContext()

    def check(self) -> CheckResult:
        """Really connect to or read the source/target and say whether it works."""
        return CheckResult.success("nothing to check")

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "type": cls.type_id,
            "family": cls.family,
            "title": cls.title or (cls.__doc__.strip().splitlines()[0] if cls.__doc__ else cls.type_id),
            "capabilities": sorted(cls.capabilities),
        }


class MeterAdapter(Adapter):
    """Reads a source (file, device, broker) and yields canonical interval batches.

    Capabilities: ``file`` (implements :meth:`read_file`), ``poll`` (a polled device),
    ``stream`` (a subscription).
    """

    family: ClassVar[str] = "meters"

    def read_file(self, path: Path, channel: str | None = None) -> IntervalBatch:
        """Parse one file into a batch; raise ``IntervalDataError`` naming line and field."""
        raise AdapterError(f"{self.type_id} does not read files", FailureKind.CONFIGURATION)

    def sniff(self, path: Path, head: bytes) -> bool:
        """Return True when this adapter recognises the file from its first bytes."""
        return False


class MarketAdapter(Adapter):
    """Exchanges data with an ISO/RTO: bids out; acceptance, awards, prices and statements in.

    One adapter per ISO (``iso`` = ``ERCOT``, ``CAISO``, ``PJM`` ...). Capabilities say
    which methods it implements: ``bids`` (:meth:`render_bids`, :meth:`validate_document`,
    :meth:`submit`, :meth:`poll_status`), ``awards`` (:meth:`fetch_awards`), ``prices``
    (:meth:`fetch_prices`, :meth:`parse_prices`), ``statements``
    (:meth:`fetch_statements`, :meth:`parse_statement`) and ``local_server``
    (:meth:`local_server`: a server on 127.0.0.1 that speaks the ISO's transport, format and
    faults). Times cross this boundary as UTC instants; the adapter owns the ISO's hour
    labels and DST rules. Money keeps the ISO's sign.
    """

    family: ClassVar[str] = "markets"
    iso: ClassVar[str] = ""

    def _unsupported(self, what: str) -> AdapterError:
        return AdapterError(f"{self.type_id} does not {what}", FailureKind.CONFIGURATION)

    def render_bids(self, bids: Sequence[Bid]) -> bytes:
        """The ISO document that submits ``bids`` (one trading day and market)."""
        raise self._unsupported("render bids")

    def validate_document(self, data: bytes) -> list[str]:
        """Offline schema problems of a rendered document (empty list = valid)."""
        return []

    def submit(self, bids: Sequence[Bid]) -> Submission:
        """Render, validate and send ``bids``; return what the ISO answered."""
        raise self._unsupported("submit bids")

    def poll_status(self, submission: Submission) -> Submission:
        """Ask the ISO where a submission stands now."""
        raise self._unsupported("poll submissions")

    def fetch_awards(self, trading_date: date, market: str) -> list[Award]:
        """The awards of one trading day and market."""
        raise self._unsupported("fetch awards")

    def fetch_prices(self, trading_date: date, market: str) -> list[MarketPrices]:
        """The ISO's prices of one operating day and market for the configured nodes."""
        raise self._unsupported("fetch prices")

    def fetch_statements(self, operating_day: date) -> list[Statement]:
        """Every statement version the ISO has issued for one operating day."""
        raise self._unsupported("fetch statements")

    def parse_prices(self, path: Path) -> list[MarketPrices]:
        """Read one of the ISO's price files into UTC-keyed exact prices."""
        raise self._unsupported("read price files")

    def parse_statement(self, path: Path) -> Statement:
        """Read one of the ISO's statement files into statement lines."""
        raise self._unsupported("read statement files")

    def local_server(self, **options: Any) -> LocalServer:
        """A server on 127.0.0.1 that plays this ISO (for tests, the demo, ``kwhub market-sim``)."""
        raise self._unsupported("provide a local ISO server")


class LocalServer(Protocol):
    """A counterpart served on loopback: ``start()`` it, talk to ``url``, ``stop()`` it."""

    url: str

    def start(self) -> Any: ...

    def stop(self) -> None: ...


class InvoiceRenderer(Adapter):
    """Turns a format-neutral invoice into bytes of one format (UBL, CII, X12, JSON...)."""

    family: ClassVar[str] = "erp"
    capabilities: ClassVar[frozenset[str]] = frozenset({"render"})
    format_id: ClassVar[str] = ""
    media_type: ClassVar[str] = "application/octet-stream"
    file_extension: ClassVar[str] = ".bin"

    def render(self, invoice: Invoice, context: RenderContext | None = None) -> bytes:
        """Render ``invoice``; ``context`` carries usage, lineage, explain data and the envelope."""
        raise AdapterError(f"{self.type_id} cannot render", FailureKind.SYSTEM)

    def validate(self, data: bytes) -> list[str]:
        """Return the problems of a rendered document (empty list = valid)."""
        return []

    def control_partner(self, invoice: Invoice) -> str | None:
        """The trading-partner key whose control-number sequence this format uses, or None.

        EDI formats (X12) number every interchange; the hub takes the next number of
        this partner's sequence in the transaction that queues the document and hands it
        over in ``context.envelope.control_number``.
        """
        return None

    def check_parties(self, seller: PartyRef, buyer: PartyRef, tax_categories: Collection[str] = ("S",)) -> list[str]:
        """What the seller and buyer lack for this format (empty when nothing).

        Each problem names the party, its role and the configuration field to set.
        ``kwhub config check`` calls this for every contract and delivery route, so a
        missing payment account or electronic address is found before anything is issued.
        """
        return []


@dataclass
class OutgoingDocument:
    """A rendered document on its way to a receiver.

    ``deadline`` is the :func:`time.monotonic` instant by which the whole send must be over
    (the outbox relay sets it shorter than the row's lease, so no other relay takes the
    row over while this send may still reach the receiver). Transports give up at the
    deadline and return a retryable failure; :meth:`time_left` gives the seconds left.
    """

    invoice_id: str
    version: int
    format_id: str
    filename: str
    media_type: str
    body: bytes
    key: str = ""  # the outbox row's key when it is not the default (a re-send with a new key)
    deadline: float | None = None  # time.monotonic() instant by which a send must be done

    @property
    def idempotency_key(self) -> str:
        return self.key or f"{self.invoice_id}:v{self.version}:{self.format_id}"

    def time_left(self, default: float) -> float:
        """Seconds until ``deadline`` (``default`` when there is none; may be negative)."""
        if self.deadline is None:
            return default
        return self.deadline - time.monotonic()


@dataclass
class DeliveryResult:
    """What a transport learnt from one send."""

    ok: bool
    status: int | None = None
    message: str = ""
    retryable: bool = False
    response: str = ""


class InvoiceTransport(Adapter):
    """Delivers rendered documents (webhook, SFTP, folder drop)."""

    family: ClassVar[str] = "erp"
    capabilities: ClassVar[frozenset[str]] = frozenset({"deliver"})

    def send(self, doc: OutgoingDocument) -> DeliveryResult:
        """Deliver ``doc`` and be done by ``doc.deadline`` (see :class:`OutgoingDocument`)."""
        raise AdapterError(f"{self.type_id} cannot send", FailureKind.SYSTEM)


class EsgReporter(Adapter):
    """Writes a GHG inventory (:class:`kwhub.core.disclosure.Disclosure`) in one disclosure format.

    ``format_id`` names the format (``kwhub esg report --format ghg|cdp|esrs|sb253``);
    :meth:`write` writes the files of every party of the disclosure into ``out_dir`` and
    returns their paths; :meth:`validate` checks written files against the format's rules
    (an empty list means valid). A writer gives the same bytes for the same disclosure.
    """

    family: ClassVar[str] = "esg"
    capabilities: ClassVar[frozenset[str]] = frozenset({"disclose"})
    format_id: ClassVar[str] = ""

    def write(self, disclosure: Disclosure, out_dir: Path) -> list[Path]:
        """Write ``disclosure`` into ``out_dir``; return the files written."""
        raise AdapterError(f"{self.type_id} cannot write", FailureKind.SYSTEM)

    def validate(self, paths: Sequence[Path]) -> list[str]:
        """The problems of files this writer wrote (empty list = valid)."""
        return []


FAMILIES: dict[str, type[Adapter]] = {
    "meters": MeterAdapter,
    "markets": MarketAdapter,
    "erp": Adapter,
    "esg": EsgReporter,
}


def adapter_types(classes: Iterable[type[Adapter]]) -> dict[str, type[Adapter]]:
    return {c.type_id: c for c in classes}
