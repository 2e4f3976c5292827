"""Read commands load the configuration without importing any plugin (issue 18: start in a blink).

The template ``kwhub init`` writes names meter, market and ERP adapters; a command that only
reads the database must still not import them, nor numpy (loading the configuration needs no arrays).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
from kwhub.hub.cli.common import load
cfg = load({path!r}, plugins=False)
from kwhub.hub.settle.invoices_read import list_invoices  # noqa: F401  (what `invoices list` imports)
print(json.dumps({{
    "plugins": sorted(m for m in sys.modules if m.startswith("kwhub.plugins")),
    "heavy": sorted(m for m in ("numpy", "pandas", "lxml.etree", "reportlab", "httpx", "asyncssh") if m in sys.modules),
    "channels": len(cfg.campus.channels), "contracts": len(cfg.campus.contracts), "adapters": len(cfg.adapters),
}}))
"""


def test_a_read_command_loads_the_campus_without_any_plugin(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "kwhub.hub.cli.main", "init"], cwd=tmp_path, check=True,
                   capture_output=True)
    cfg = tmp_path / "kwhub.toml"
    assert "[[adapters]]" in cfg.read_text()
    out = subprocess.run([sys.executable, "-c", PROBE.format(path=str(cfg))], cwd=tmp_path, check=True,
                         capture_output=True, text=True)
    seen = json.loads(out.stdout)
    assert seen["plugins"] == [] and seen["heavy"] == []
    assert seen["channels"] > 0 and seen["contracts"] > 0 and seen["adapters"] == 0


def test_a_config_error_is_still_reported_by_a_read_command(tmp_path: Path) -> None:
    (tmp_path / "kwhub.toml").write_text('[hub]\nname = "x"\n[[sites]]\nid = "s"\nname = "S"\n'
                                         '[[channels]]\nid = "c1"\nsite = "nowhere"\nkind = "load"\nunit = "kWh"\n')
    r = subprocess.run([sys.executable, "-m", "kwhub.hub.cli.main", "invoices", "list"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "nowhere" in r.stderr
