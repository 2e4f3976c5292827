"""What the XML invoice renderers checked against an XSD (UBL, CII) share: their media type,
a schema that cannot be loaded as a configuration failure, and validation in one order:
a document that is not safe XML gives that one problem, then a wrong root element that one
problem, then the XSD errors (``XSD line N: message``) followed by the format's own rules.

Each format keeps its building, its schema lookup and its rules.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import ClassVar

from lxml import etree

from kwhub.core.adapters import AdapterError, FailureKind, InvoiceRenderer
from kwhub.hub.helpers.safe_xml import UnsafeXmlError, parse_xml


class SchemaUnavailable(AdapterError):
    """A format's XSD cannot be found or loaded: the configuration (or the installation) is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message, FailureKind.CONFIGURATION)


class XsdInvoiceRenderer(InvoiceRenderer, ABC):
    """An XML invoice renderer whose documents are checked against an XSD, then the format's rules."""

    media_type: ClassVar[str] = "application/xml"
    file_extension: ClassVar[str] = ".xml"
    capabilities: ClassVar[frozenset[str]] = frozenset({"render", "validate"})
    document: ClassVar[str]  # what a parse error calls the document, e.g. "UBL document"

    @abstractmethod
    def wrong_root(self, root: etree._Element) -> str | None:
        """The problem with a root element this format does not take, or None."""

    @abstractmethod
    def schema_of(self, root: etree._Element) -> tuple[etree.XMLSchema, threading.Lock]:
        """The compiled schema for ``root`` and the lock its (not thread-safe) use is held under."""

    @abstractmethod
    def rule_problems(self, root: etree._Element) -> list[str]:
        """The format's own rule violations (after the XSD errors)."""

    def validate(self, data: bytes) -> list[str]:
        """XSD errors (``XSD line N: ...``) followed by the format's rule violations."""
        try:
            root = parse_xml(data, self.document)
        except UnsafeXmlError as exc:
            return [str(exc)]
        wrong = self.wrong_root(root)
        if wrong is not None:
            return [wrong]
        schema, lock = self.schema_of(root)
        with lock:
            errors = [] if schema.validate(root) else [f"XSD line {e.line}: {e.message}" for e in schema.error_log]
        return errors + self.rule_problems(root)
