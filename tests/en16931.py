"""The official CEN EN 16931 validation artefacts, run by an XSLT 2.0 engine (SaxonC-HE).

``../shared/standards/en16931-1.3.16/`` holds the compiled Schematron of release 1.3.16
(EUPL-1.2) for UBL and CII. :func:`official_findings` runs the matching stylesheet on a
document and returns the failed assertions as :class:`Finding` objects (rule id, flag,
location and the rule's own text); ``fatal`` ones are what a receiver rejects.

The stylesheets are compiled once per process (a few seconds each).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from tests.conftest import SHARED

ARTEFACTS = SHARED / "standards" / "en16931-1.3.16"
STYLESHEETS = {"ubl": "EN16931-UBL-validation.xslt", "cii": "EN16931-CII-validation.xslt"}
SVRL = "http://purl.oclc.org/dsdl/svrl"
CII_ROOT = "{urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100}CrossIndustryInvoice"


@dataclass(frozen=True)
class Finding:
    """One failed assertion of the official rules."""

    rule: str
    flag: str
    location: str
    text: str

    def __str__(self) -> str:
        return f"{self.rule} [{self.flag}] at {self.location}: {self.text}"


_LOCK = threading.Lock()
_COMPILED: dict[str, object] = {}
_PROC: object | None = None


def _executable(syntax: str) -> object:
    global _PROC
    from saxonche import PySaxonProcessor

    with _LOCK:
        if syntax not in _COMPILED:
            if _PROC is None:
                _PROC = PySaxonProcessor(license=False)
            xslt = _PROC.new_xslt30_processor()  # type: ignore[attr-defined]
            _COMPILED[syntax] = xslt.compile_stylesheet(stylesheet_file=str(ARTEFACTS / STYLESHEETS[syntax]))
        return _COMPILED[syntax]


def syntax_of(data: bytes) -> str:
    """``cii`` for a CrossIndustryInvoice, else ``ubl``."""
    root = etree.fromstring(data)
    return "cii" if root.tag == CII_ROOT else "ubl"


def official_findings(data: bytes, syntax: str | None = None) -> list[Finding]:
    """Every failed assertion of the official EN 16931 rules on ``data`` (UBL or CII XML)."""
    syntax = syntax or syntax_of(data)
    executable = _executable(syntax)
    with _LOCK:
        assert _PROC is not None
        node = _PROC.parse_xml(xml_text=data.decode("utf-8"))  # type: ignore[attr-defined]
        svrl = executable.transform_to_string(xdm_node=node)  # type: ignore[attr-defined]
    report = etree.fromstring(svrl.encode("utf-8"))
    out = []
    for fa in report.iter(f"{{{SVRL}}}failed-assert"):
        text = " ".join("".join(fa.itertext()).split())
        out.append(Finding(fa.get("id") or "?", fa.get("flag") or "fatal", fa.get("location") or "", text))
    return out


def fatal(data: bytes, syntax: str | None = None) -> list[str]:
    """The fatal findings as readable lines (empty when a receiver accepts the document)."""
    return [str(f) for f in official_findings(data, syntax) if f.flag == "fatal"]


def available() -> bool:
    """Whether the artefacts are present (they are in the shared folder beside the repo)."""
    return all((ARTEFACTS / name).is_file() for name in STYLESHEETS.values())


__all__ = ["ARTEFACTS", "Finding", "available", "fatal", "official_findings", "syntax_of"]


def _self_check(path: Path) -> None:  # pragma: no cover - a manual aid: python -m tests.en16931 FILE
    for f in official_findings(path.read_bytes()):
        print(f)


if __name__ == "__main__":  # pragma: no cover
    import sys

    _self_check(Path(sys.argv[1]))
