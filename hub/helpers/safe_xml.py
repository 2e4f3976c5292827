"""Safe XML parsing for the ERP validators and round-trip readers.

Every document a renderer re-reads (its own output, or a tampered copy of it) goes
through :func:`parse_xml`: entity resolution, DTD loading and network access are off, and
a document carrying a DOCTYPE is refused outright, so an entity-expansion or external
entity payload is never processed.
"""

from __future__ import annotations

from lxml import etree


class UnsafeXmlError(ValueError):
    """The bytes are not acceptable XML (DOCTYPE present or not well-formed)."""


def safe_parser() -> etree.XMLParser:
    """An lxml parser with entities, DTDs and network access disabled."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


_PARSER = safe_parser()


def parse_xml(data: bytes, what: str = "document") -> etree._Element:
    """Parse ``data`` safely and return the root element.

    Raises :class:`UnsafeXmlError` naming ``what`` and the line when the document has a
    DOCTYPE or is not well-formed.
    """
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
    if tree.docinfo.doctype or (tree.docinfo.internalDTD is not None):
        raise UnsafeXmlError(f"{what}: a DOCTYPE declaration is not allowed")
    return root


def element_path(el: etree._Element) -> str:
    """A readable path of ``el`` with prefixes, e.g. ``/Invoice/cac:InvoiceLine[2]/cbc:ID``."""
    parts: list[str] = []
    node: etree._Element | None = el
    while node is not None:
        qn = etree.QName(node)
        name = f"{node.prefix}:{qn.localname}" if node.prefix else qn.localname
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if c.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))
