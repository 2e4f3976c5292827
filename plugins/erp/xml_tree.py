"""A light element tree for renderers that write XML: built with plain Python objects and
serialised straight to bytes, the same bytes lxml writes for the same tree.

Building a document of a few hundred elements through lxml costs a C-API call and a node
allocation per element and per text; a renderer that only writes (never queries) its tree
builds :class:`Node` objects instead and serialises them with :func:`to_bytes`, which
reproduces ``etree.tostring(tree, xml_declaration=True, encoding="UTF-8",
pretty_print=True)`` byte for byte (two-space indentation, lxml's escaping of text and
attribute values, ``<a></a>`` for an empty text and ``<a/>`` for none) and refuses the
characters lxml refuses. :func:`to_lxml` gives the lxml tree of the same nodes, for
callers that want one (and for the tests that compare both serialisations).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lxml import etree

DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_TEXT_SPECIAL = re.compile("[&<>\r]")
_ATTR_SPECIAL = re.compile("[&<>\"\n\r\t]")
_TEXT_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}
_ATTR_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
INVALID_MESSAGE = "All strings must be XML compatible: Unicode or ASCII, no NULL bytes or control characters"


class Node:
    """One element: Clark-notation tag (``{namespace}local``), attributes, text, children."""

    __slots__ = ("tag", "attrs", "text", "children")

    def __init__(self, tag: str, text: str | None = None, attrs: dict[str, str] | None = None) -> None:
        self.tag = tag
        self.text = text
        self.attrs = attrs
        self.children: list[Node] = []


def sub(parent: Node, tag: str, text: str | None = None, **attrs: str) -> Node:
    """Append a child element to ``parent`` and return it."""
    node = Node(tag, text, attrs or None)
    parent.children.append(node)
    return node


def _text(value: str) -> str:
    if _TEXT_SPECIAL.search(value) is None:
        return value
    return _TEXT_SPECIAL.sub(lambda m: _TEXT_ESCAPES[m.group()], value)


def _attr(value: str) -> str:
    if _ATTR_SPECIAL.search(value) is None:
        return value
    return _ATTR_SPECIAL.sub(lambda m: _ATTR_ESCAPES[m.group()], value)


class _Names(dict[str, str]):
    """Clark tag -> written name (``cbc:ID``; the bare local name in the default namespace)."""

    def __init__(self, nsmap: Mapping[str | None, str]) -> None:
        super().__init__()
        self.prefixes = {ns: (f"{prefix}:" if prefix else "") for prefix, ns in nsmap.items()}

    def __missing__(self, tag: str) -> str:
        if tag.startswith("{"):
            ns, _, local = tag[1:].partition("}")
            name = self.prefixes[ns] + local
        else:
            name = tag
        self[tag] = name
        return name


def _write(node: Node, indent: str, out: list[str], names: _Names, decls: str = "") -> None:
    name = names[node.tag]
    attrs = node.attrs
    head = f"{indent}<{name}{decls}" + ("".join(f' {k}="{_attr(v)}"' for k, v in attrs.items()) if attrs else "")
    children = node.children
    if children:
        if node.text is not None:  # mixed content: lxml would not indent it; not written by this writer
            raise ValueError(f"element {name} has both text and children")
        out.append(head + ">\n")
        inner = indent + "  "
        for child in children:
            _write(child, inner, out, names)
        out.append(f"{indent}</{name}>\n")
    elif node.text is None:
        out.append(head + "/>\n")
    else:
        text = node.text
        if _TEXT_SPECIAL.search(text) is not None:
            text = _text(text)
        out.append(f"{head}>{text}</{name}>\n")


def to_bytes(root: Node, nsmap: Mapping[str | None, str]) -> bytes:
    """The UTF-8 document (declaration, two-space indentation) with ``nsmap`` declared on the root.

    Raises ValueError, as lxml does, when a text or attribute holds a character XML 1.0 cannot
    carry (a control character, U+FFFE, U+FFFF or a lone surrogate)."""
    out: list[str] = [DECLARATION]
    decls = "".join(f' xmlns{":" + prefix if prefix else ""}="{_attr(ns)}"' for prefix, ns in nsmap.items())
    _write(root, "", out, _Names(nsmap), decls)
    doc = "".join(out)
    if _INVALID.search(doc):  # the markup itself never holds one: it came from a value
        raise ValueError(INVALID_MESSAGE)
    return doc.encode("utf-8")


def to_lxml(root: Node, nsmap: Mapping[str | None, str]) -> etree._Element:
    """The same tree as lxml elements."""
    el = etree.Element(root.tag, root.attrs or {}, nsmap=dict(nsmap))
    el.text = root.text
    _fill(el, root)
    return el


def _fill(el: etree._Element, node: Node) -> None:
    for child in node.children:
        c = etree.SubElement(el, child.tag, child.attrs) if child.attrs else etree.SubElement(el, child.tag)
        if child.text is not None:
            c.text = child.text
        _fill(c, child)
