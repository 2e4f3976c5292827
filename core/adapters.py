"""The adapter contract shared by every plugin family.

An adapter class declares a unique ``type_id`` (``meters.csv``), a pydantic ``Config``
(``extra="forbid"``; secrets as :class:`~pydantic.SecretStr`, which may be given as an
environment reference ``"env:NAME"``), its ``capabilities`` and a :meth:`Adapter.check`
that really connects or reads and classifies a failure. Operators create *instances* of
an adapter type in ``kwhub.toml``: ``type`` + ``id`` + that type's config.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

if TYPE_CHECKING:
    from kwhub.core.disclosure import Disclosure
    from kwhub.core.intervals import IntervalBatch
    from kwhub.core.invoice import Invoice, PartyRef
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
    """Base of every adapter's ``Config``: unknown keys are errors, secrets resolve from env."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _resolve_env_secrets(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
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
    """What the hub hands an adapter instance: where to work and what the campus looks like."""

    work_dir: Path = field(default_factory=Path.cwd)
    channels: dict[str, Any] = field(default_factory=dict)  # channel id -> ChannelSpec
    timezone: str = "UTC"


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
    """Exchanges data with an ISO/RTO: prices in, bids out, statements in."""

    family: ClassVar[str] = "markets"


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
    """A rendered document on its way to a receiver."""

    invoice_id: str
    version: int
    format_id: str
    filename: str
    media_type: str
    body: bytes
    key: str = ""  # the outbox row's key when it is not the default (a re-send with a new key)

    @property
    def idempotency_key(self) -> str:
        return self.key or f"{self.invoice_id}:v{self.version}:{self.format_id}"


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
