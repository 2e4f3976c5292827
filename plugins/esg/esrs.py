"""ESRS E1-6 gross Scope 1, 2 (location- and market-based) and 3 as inline XBRL (XHTML).

One XHTML page per party (``esrs-e1-6-<period>-<party>.xhtml``): a readable table whose
figures are ``ix:nonFraction`` facts of the EFRAG ESRS Set 1 taxonomy (namespace
``https://xbrl.efrag.org/taxonomy/esrs/2023-12-22``, schema reference to its entry point
``esrs_all.xsd``), in tCO2e (UTR unit) for the reporting period. The concept names are
data (``esrs_taxonomy/mapping.json``), since the simplified ESRS may rename them. Scope 3
is the category 3 part kwhub computes from the energy it settles; the page says so.

The check validates each page with Arelle (``arelle-release``; ``pip install
'kwhub[esg]'``), offline, against a taxonomy package this plugin writes beside it
(``kwhub-esrs-e1-6-taxonomy.zip``: kwhub's own schema declaring these concepts with EFRAG's
namespace, names and data type, and a catalog mapping EFRAG's URLs to it). Arelle exits 0
even when validation fails, so the check reads its JSON log and reports every entry of
level ``error`` (or worse).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import ClassVar

from kwhub.core.adapters import AdapterConfig, EsgReporter
from kwhub.core.disclosure import Disclosure, PartyInventory
from kwhub.core.hookspecs import hookimpl
from kwhub.hub.helpers.files import atomic_write, safe_name

TAXONOMY_DIR = Path(__file__).with_name("esrs_taxonomy")
PACKAGE_NAME = "kwhub-esrs-e1-6-taxonomy.zip"
IX_NS = "http://www.xbrl.org/2013/inlineXBRL"
IXT_NS = "http://www.xbrl.org/inlineXBRL/transformation/2020-02-12"
ENTITY_SCHEME = "urn:kwhub:party"
TONNES = Decimal("0.001")
ARELLE_TIMEOUT_S = 300


def mapping() -> dict[str, object]:
    """The concept mapping (``esrs_taxonomy/mapping.json``)."""
    data: dict[str, object] = json.loads((TAXONOMY_DIR / "mapping.json").read_text())
    return data


class EsrsConfig(AdapterConfig):
    """``validate``: run Arelle on every page written (default true)."""

    validate_with_arelle: bool = True


def _t(kg_value: Decimal) -> Decimal:
    return (kg_value / 1000).quantize(TONNES)


def page(disclosure: Disclosure, inv: PartyInventory) -> str:
    """The inline XBRL page of one party."""
    m = mapping()
    concepts = m["concepts"]
    assert isinstance(concepts, dict)
    prefix = m["prefix"]
    figures = [
        ("scope1", "Gross Scope 1 GHG emissions", _t(inv.kg_co2e("1"))),
        ("scope2_location", "Gross location-based Scope 2 GHG emissions", _t(inv.kg_co2e("2", "location"))),
        ("scope2_market", "Gross market-based Scope 2 GHG emissions", _t(inv.kg_co2e("2", "market"))),
        ("scope3", "Gross Scope 3 GHG emissions (category 3: fuel- and energy-related activities)", _t(inv.kg_co2e("3"))),
    ]
    rows = []
    for key, label, value in figures:
        sign = ' sign="-"' if value < 0 else ""
        rows.append(f'<tr><td>{escape(label)}</td><td class="n"><ix:nonFraction name="{prefix}:{concepts[key]}" '
                    f'contextRef="period" unitRef="tCO2e" decimals="3" format="ixt:num-dot-decimal"{sign}>'
                    f'{abs(value)}</ix:nonFraction></td><td>tCO2e</td></tr>')
    notes = "".join(f"<li>{escape(n)}</li>" for n in disclosure.notes)
    unknown = sum((r.unknown_kwh for r in inv.rows), Decimal(0))
    factors = "".join(f"<li>{escape(f.get('factor_id', ''))} ({escape(f.get('version', ''))}): "
                      f"{escape(f.get('source', ''))} {escape(f.get('table', ''))}</li>" for f in disclosure.factors)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:ix="{IX_NS}" xmlns:ixt="{IXT_NS}"
      xmlns:xbrli="http://www.xbrl.org/2003/instance" xmlns:link="http://www.xbrl.org/2003/linkbase"
      xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:utr="http://www.xbrl.org/2009/utr"
      xmlns:{prefix}="{m['namespace']}" xml:lang="en">
<head><meta http-equiv="Content-Type" content="text/html; charset=UTF-8"/>
<title>ESRS E1-6 gross GHG emissions, {escape(inv.name or inv.party)}, {escape(disclosure.period)}</title>
<style type="text/css">body{{font-family:sans-serif}} td{{padding:2px 8px}} td.n{{text-align:right}}</style></head>
<body>
<div style="display:none"><ix:header><ix:references>
<link:schemaRef xlink:type="simple" xlink:href="{m['entry_point']}"/>
</ix:references><ix:resources>
<xbrli:context id="period"><xbrli:entity><xbrli:identifier scheme="{ENTITY_SCHEME}">{escape(inv.party)}</xbrli:identifier></xbrli:entity>
<xbrli:period><xbrli:startDate>{disclosure.start.isoformat()}</xbrli:startDate><xbrli:endDate>{disclosure.end.isoformat()}</xbrli:endDate></xbrli:period></xbrli:context>
<xbrli:unit id="tCO2e"><xbrli:measure>utr:tCO2e</xbrli:measure></xbrli:unit>
</ix:resources></ix:header></div>
<h1>ESRS E1-6: gross Scope 1, 2 and 3 GHG emissions</h1>
<p>{escape(inv.name or inv.party)} ({escape(inv.party)}), {disclosure.start.isoformat()} to {disclosure.end.isoformat()},
campus {escape(disclosure.campus)}. Metric tonnes CO2e with {escape(disclosure.gwp_set)} global warming potentials
(100-year); consolidation: {escape(disclosure.consolidation)}; grid region {escape(disclosure.region or "not set")}.</p>
<table>
<tr><th>Datapoint</th><th>Value</th><th>Unit</th></tr>
{chr(10).join(rows)}
</table>
<p>Scope 3 covers category 3 only (upstream of fuels and of purchased electricity, T&amp;D losses, energy bought and
resold), computed from the settled energy; other categories are outside this page. Energy without an emissions figure
in these rows: {unknown} kWh.</p>
<h2>Factors</h2><ul>{factors or "<li>none</li>"}</ul>
<h2>Notes</h2><ul>{notes or "<li>none</li>"}</ul>
</body>
</html>
"""


def write_package(path: Path) -> Path:
    """Write the taxonomy package zip (a single top-level folder holding ``META-INF``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(TAXONOMY_DIR.rglob("*")):
            if f.is_file() and f.name != "mapping.json":
                info = zipfile.ZipInfo(f"kwhub-esrs-e1-6/{f.relative_to(TAXONOMY_DIR).as_posix()}", (2026, 12, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, f.read_bytes())
    return path


def arelle_errors(instances: Sequence[Path], package: Path) -> list[str]:
    """Validate ``instances`` with Arelle (one run) offline against ``package``; the log's error entries.

    Raises ``FileNotFoundError`` when ``arelle-release`` is not installed.
    """
    try:
        import arelle  # noqa: F401
    except ImportError:
        raise FileNotFoundError("Arelle is not installed (pip install 'kwhub[esg]' or arelle-release)") from None
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "arelle-log.json"
        cmd = [sys.executable, "-m", "arelle.CntlrCmdLine", "--file", "|".join(str(p) for p in instances),
               "--packages", str(package),
               "--internetConnectivity", "offline", "--validate", "--plugins", "inlineXbrlDocumentSet",
               "--logFile", str(log), "--logLevel", "info"]
        res = subprocess.run(cmd, capture_output=True, timeout=ARELLE_TIMEOUT_S, check=False, cwd=tmp)
        if not log.exists():
            return [f"Arelle wrote no log (exit {res.returncode}): {res.stderr.decode(errors='replace')[-500:]}"]
        entries = json.loads(log.read_text()).get("log", [])
    out = []
    for e in entries:
        if str(e.get("level", "")).lower() in ("error", "critical", "fatal"):
            msg = e.get("message", {})
            text = msg.get("text", "") if isinstance(msg, dict) else str(msg)
            out.append(f"{e.get('code', '')}: {text}".strip())
    return out


class EsrsWriter(EsgReporter):
    """ESRS E1-6 gross Scope 1, 2 (LBM and MBM) and 3 as inline XBRL, checked with Arelle."""

    type_id: ClassVar[str] = "esg.esrs"
    title: ClassVar[str] = "ESRS E1-6 inline XBRL (EFRAG ESRS taxonomy concepts)"
    format_id: ClassVar[str] = "esrs"
    Config = EsrsConfig
    config: EsrsConfig

    def write(self, disclosure: Disclosure, out_dir: Path) -> list[Path]:
        paths = [atomic_write(out_dir / f"{safe_name('esrs-e1-6', disclosure.period, inv.party)}.xhtml",
                              page(disclosure, inv)) for inv in disclosure.parties]
        paths.append(write_package(out_dir / PACKAGE_NAME))
        return paths

    def validate(self, paths: Sequence[Path]) -> list[str]:
        pages = [p for p in paths if p.suffix == ".xhtml"]
        if not self.config.validate_with_arelle or not pages:
            return []
        package = next((p for p in paths if p.name == PACKAGE_NAME), None)
        with tempfile.TemporaryDirectory() as tmp:
            if package is None:
                package = write_package(Path(tmp) / PACKAGE_NAME)
            try:
                return arelle_errors(pages, package)
            except FileNotFoundError as exc:
                return [f"{', '.join(p.name for p in pages)}: not validated: {exc}"]
            except subprocess.TimeoutExpired:
                return [f"{', '.join(p.name for p in pages)}: Arelle did not finish within {ARELLE_TIMEOUT_S} s"]


@hookimpl
def kwhub_register_esg_adapters(register):
    """Register the ESRS inline XBRL writer."""
    register(EsrsWriter)
