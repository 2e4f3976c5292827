"""The public face of kwhub for plugin authors, pinned as httpx pins its exports, and the one namespace."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import kwhub

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = [
    "Adapter", "AdapterConfig", "AdapterContext", "AdapterError", "ChannelSeries", "Charge", "CheckResult",
    "DeliveryResult", "EsgReporter", "FailureKind", "IntervalBatch", "IntervalDataError", "IntervalMatrix",
    "Invoice", "InvoiceLine", "InvoiceRenderer", "InvoiceTransport", "MarketAdapter", "MeterAdapter",
    "OutgoingDocument", "PartyRef", "PriceComponent", "PricingContext", "Quality", "RenderContext", "TaxSubtotal",
    "__version__", "hookimpl", "hookspec",
]


def test_public_api_is_pinned():
    assert sorted(kwhub.__all__) == sorted(PUBLIC)


def test_every_public_name_resolves_to_its_implementation():
    for name in PUBLIC:
        value = getattr(kwhub, name)
        if name != "__version__":
            assert getattr(value, "__module__", "").startswith("kwhub.") or name in ("hookimpl", "hookspec")


def test_importing_kwhub_loads_no_implementation():
    code = "import sys, kwhub; print(sorted(m for m in sys.modules if m.startswith('kwhub.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_pyproject_lists_every_package_of_the_tree():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(data["tool"]["setuptools"]["packages"])
    found = set()
    for root, prefix in (("core", "kwhub."), ("hub", "kwhub."), ("plugins", "kwhub."), ("kwhub", "")):
        for d, dirs, files in os.walk(ROOT / root):
            dirs[:] = [x for x in dirs if x != "__pycache__"]
            if "__init__.py" in files:
                found.add(prefix + Path(d).relative_to(ROOT).as_posix().replace("/", "."))
    assert listed == found


def test_the_wheel_installs_nothing_but_kwhub(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("kwhub-*.whl"))
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"kwhub", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    names = zipfile.ZipFile(wheel).namelist()
    for must in ("kwhub/__init__.py", "kwhub/py.typed", "kwhub/core/settlement.py",
                 "kwhub/hub/store/migrations/versions/0008_review_gate.py", "kwhub/plugins/erp/ubl.py",
                 "kwhub/testing/plugin.py", "kwhub/hub/templates/plugin/meters/plugin.py.tmpl",
                 "kwhub/hub/templates/plugin/erp/energy_invoice.txt.tmpl"):
        assert must in names
