"""``kwhub init``: write a starter campus (``kwhub.toml`` and the sample files it reads) into a folder.

Three starters, each of which passes ``kwhub adapters check`` as written:

* ``campus`` (the default): ``hub/templates/kwhub.example.toml``, every section of the file with
  its defaults written out, and the sample meter, price and index files of ``hub/templates/campus``;
* ``single-tenant``: ``hub/templates/examples/single-tenant``, one plant, the grid and one hall;
* ``demo``: the campus ``kwhub demo`` settles (three tenants, eight thermal units, solar, a
  battery, the grid), with the demo's two months of simulated meter data and price files. The
  local webhook receiver and ERCOT that ``kwhub demo`` starts are left out: they exist only
  while the demo runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent / "templates"
CONFIG_NAME = "kwhub.toml"


class StarterError(ValueError):
    """A starter cannot be written (unknown name, a kwhub.toml already there); ``hint`` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Starter:
    """One starter campus: its name, what it shows, and how its files are made."""

    name: str
    title: str
    files: Callable[[], dict[str, bytes]]  # relative path -> content


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _campus() -> dict[str, bytes]:
    return {CONFIG_NAME: (TEMPLATES / "kwhub.example.toml").read_bytes(), **_tree(TEMPLATES / "campus")}


def _single_tenant() -> dict[str, bytes]:
    return _tree(TEMPLATES / "examples" / "single-tenant")


DEMO_HEADER = """\
# kwhub.toml of the demo campus (`kwhub init --example demo`): three tenants on a campus with
# eight thermal units, solar, a battery and a grid tie, and two months of simulated meter data
# (meters/, utility/) with the faults VEE finds. `kwhub demo` runs the whole path on this campus
# and adds a local ERP webhook and a local ERCOT while it runs; here the invoices go to folders.
#   kwhub adapters check
#   kwhub ingest --adapter meter_csv meters/*.csv        # and VEE on the days they touch
#   kwhub ingest --adapter utility_gb utility/grid_import_greenbutton.xml
#   kwhub readings --summary                              # kWh, MMBtu and fractions, each on its own
# docs/configuration.md explains every key.

"""


def demo_config_for_files() -> dict[str, Any]:
    """The demo's configuration without the services only ``kwhub demo`` runs (webhook, ERCOT)."""
    from kwhub.hub.demo.campus_files import demo_config
    from kwhub.hub.demo.simulator.campus import campus_definition

    data = demo_config(campus_definition(15), webhook_url="")
    data["adapters"] = [a for a in data["adapters"] if a["type"] != "erp.webhook"]
    kept = {a["id"] for a in data["adapters"]}
    for party in data["parties"]:
        routes = party.get("delivery", {}).get("routes")
        if routes:
            party["delivery"]["routes"] = [r for r in routes if r["transport"] in kept]
    return data


def _demo() -> dict[str, bytes]:
    import tempfile

    import tomli_w

    from kwhub.hub.demo.campus_files import (
        DEMO_DAYS,
        DEMO_START,
        SEED,
        write_index_csv,
        write_lmp_csv,
    )
    from kwhub.hub.demo.simulator.campus import FaultSpec, simulate
    from kwhub.hub.demo.simulator.files import write_csv, write_greenbutton

    sim = simulate(DEMO_START, DEMO_DAYS, 15, seed=SEED, faults=FaultSpec.default(DEMO_START, DEMO_DAYS, 15))
    with tempfile.TemporaryDirectory(prefix="kwhub-demo-") as tmp:
        base = Path(tmp)
        write_csv(sim, base / "meters", layout="long", channels=[c for c in sim.series if c != "grid.import"])
        write_greenbutton(sim, "grid.import", base / "utility" / "grid_import_greenbutton.xml",
                          usage_point_title="Campus grid tie (utility revenue meter)")
        write_index_csv(base / "prices" / "henry_hub.csv", DEMO_START, DEMO_DAYS)
        write_lmp_csv(base / "prices" / "lmp.csv", DEMO_START, DEMO_DAYS)
        files = _tree(base)
    files[CONFIG_NAME] = (DEMO_HEADER + tomli_w.dumps(demo_config_for_files())).encode()
    return files


STARTERS: dict[str, Starter] = {
    "campus": Starter("campus", "every section of kwhub.toml, commented, with sample meter, price and index "
                                "files (the default)", _campus),
    "single-tenant": Starter("single-tenant", "one solar plant, the grid and one data hall, with a day of "
                                              "meter data", _single_tenant),
    "demo": Starter("demo", "the campus of `kwhub demo`: three tenants, eight thermal units, solar, a battery; "
                            "two months of simulated meter data", _demo),
}


def write_starter(name: str, folder: Path, *, force: bool = False) -> list[Path]:
    """Write starter ``name`` into ``folder``; refuse an existing kwhub.toml (or sample file) unless ``force``."""
    starter = STARTERS.get(name)
    if starter is None:
        raise StarterError(f"unknown example {name!r}", hint=f"one of {', '.join(STARTERS)} (`--example list`)")
    if folder.exists() and not folder.is_dir():
        raise StarterError(f"{folder} is a file", hint="pass --dir with a folder path")
    target = folder / CONFIG_NAME
    if target.exists() and not force:
        raise StarterError(f"{target} already exists", hint="pass --force to overwrite it and the sample files")
    files = starter.files()
    if not force:
        taken = sorted(rel for rel in files if (folder / rel).exists())
        if taken:
            raise StarterError(f"{folder / taken[0]} already exists" + (f" (and {len(taken) - 1} more sample "
                               "files)" if len(taken) > 1 else ""), hint="pass --force to overwrite them")
    written = []
    for rel, content in sorted(files.items()):
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written
