"""Safe XML parsing for documents that come from outside (ISO replies, statements).

Entity resolution, DTD loading and network access are off, and a document carrying a
DOCTYPE is refused outright, so an entity-expansion or external-entity payload is never
processed. Errors name the document and the line.
"""

from __future__ import annotations

from lxml import etree


class UnsafeXmlError(ValueError):
    """The bytes are not acceptable XML (a DOCTYPE, or not well-formed)."""


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                          huge_tree=False, remove_blank_text=True)


def parse_xml(data: bytes, what: str = "document") -> etree._Element:
    """Parse ``data`` and return its root; :class:`UnsafeXmlError` names ``what`` and the line."""
    if not isinstance(data, bytes | bytearray):
        raise UnsafeXmlError(f"{what}: expected bytes, got {type(data).__name__}")
    head = bytes(data[:4096]).upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise UnsafeXmlError(f"{what}: a DOCTYPE/ENTITY declaration is not allowed")
    try:
        root = etree.fromstring(bytes(data), parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno is not None else "?"
        raise UnsafeXmlError(f"{what}: not well-formed XML at line {line}: {exc.msg}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise UnsafeXmlError(f"{what}: a DOCTYPE declaration is not allowed")
    return root
