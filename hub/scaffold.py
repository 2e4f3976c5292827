"""``kwhub plugins new``: write a working plugin package from the templates in ``hub/templates/plugin``.

For a plugin NAME (``acme``) of a family the package is ``kwhub_acme`` (distribution
``kwhub-acme``, entry point ``acme``, adapter type ``<family>.acme``) with a
``pyproject.toml``, the adapter module, a sample and tests that use the plugin test kit
(:mod:`kwhub.testing`). Templates are plain files with ``{{placeholder}}`` fields; every
file is rendered before anything is written, and an unknown placeholder is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates" / "plugin"
NAME_RULE = re.compile(r"[a-z][a-z0-9_]{0,39}")
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


class ScaffoldError(ValueError):
    """A plugin cannot be written (bad name, occupied folder); ``hint`` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Family:
    """What ``plugins new`` writes for one family: templates -> paths, a title, how to use it."""

    files: tuple[tuple[str, str, str], ...]  # (template, path in the package, what it is)
    title: str
    usage: str


COMMON = (("common/pyproject.toml.tmpl", "pyproject.toml", "the distribution and its `kwhub` entry point"),
          ("common/README.md.tmpl", "README.md", "this file"))
ADAPTER = "the adapter and the hooks that register it"
TESTS = "tests with the kwhub plugin test kit (`pytest`)"

FAMILIES: dict[str, Family] = {
    "meters": Family(
        files=(("meters/plugin.py.tmpl", "{package}/__init__.py", ADAPTER),
               ("meters/sample.csv.tmpl", "samples/{name}_export.csv", "a sample export with two meters"),
               ("meters/test_plugin.py.tmpl", "tests/test_{name}.py", TESTS)),
        title="{Name} meter exports",
        usage="Ingest the sample: `kwhub ingest samples/{name}_export.csv` (the plugin's sniffer claims the\n"
              "file; `--adapter {type_id}` names the adapter), then `kwhub readings --summary`.",
    ),
    "erp": Family(
        files=(("erp/plugin.py.tmpl", "{package}/__init__.py", ADAPTER),
               ("erp/energy_invoice.txt.tmpl", "samples/energy_invoice.txt",
                "the kit's sample invoice as the renderer writes it"),
               ("erp/test_plugin.py.tmpl", "tests/test_{name}.py", TESTS)),
        title="{Name} ERP flat files",
        usage="A party receives the format with `delivery = {{ formats = [\"{name}\"], transports = [...] }}` in\n"
              "kwhub.toml; `kwhub invoices render ID --format {name}` shows an issued invoice in it.",
    ),
    "markets": Family(
        files=(("markets/plugin.py.tmpl", "{package}/__init__.py", ADAPTER),
               ("markets/sample.csv.tmpl", "samples/{name}_prices.csv", "a sample price file (DA and RT)"),
               ("markets/test_plugin.py.tmpl", "tests/test_{name}.py", TESTS)),
        title="{Name} price files",
        usage="Configure an instance (`type = \"{type_id}\"`, `path = ...`); `kwhub adapters check` reads the\n"
              "file's header. `parse_prices(path)` and `fetch_prices(day, market)` give kwhub's exact\n"
              "`MarketPrices` (capability `prices`); the tests run the kit's `check_market_adapter` and\n"
              "`check_market_rejects` on it.",
    ),
    "esg": Family(
        files=(("esg/plugin.py.tmpl", "{package}/__init__.py", ADAPTER),
               ("esg/sample.csv.tmpl", "samples/{name}-2026-10.csv", "the file the tests' disclosure gives"),
               ("esg/test_plugin.py.tmpl", "tests/test_{name}.py", TESTS)),
        title="{Name} emissions disclosures",
        usage="Configure an instance (`type = \"{type_id}\"`); `kwhub adapters check` checks its folder.\n"
              "`write(disclosure, out_dir)` takes the `kwhub.core.disclosure.Disclosure` every ESG writer reads\n"
              "(format `{name}`); the tests build a small one by hand and run the kit's `check_esg_writer`.",
    ),
}


def kwhub_version() -> str:
    """The installed kwhub version (the plugin's minimum)."""
    try:
        return version("kwhub")
    except PackageNotFoundError:
        import kwhub

        return kwhub.__version__


def names(name: str, family: str) -> dict[str, str]:
    """Every placeholder value for plugin ``name`` of ``family``."""
    if not NAME_RULE.fullmatch(name):
        suggestion = re.sub(r"[^a-z0-9_]", "_", name.lower()).strip("_")
        raise ScaffoldError(
            f"plugin name {name!r} is not a lower-case Python identifier (a letter, then letters, digits or _; "
            "at most 40)", hint=f"try {suggestion!r}" if NAME_RULE.fullmatch(suggestion) else "e.g. acme or acme_gw")
    if family not in FAMILIES:
        raise ScaffoldError(f"unknown family {family!r}", hint=f"one of {', '.join(FAMILIES)}")
    camel = "".join(part.capitalize() for part in name.split("_") if part)
    values = {"name": name, "Name": camel, "NAME": name.upper(), "ISO": name.upper()[:16].rstrip("_"), "family": family,
              "package": f"kwhub_{name}", "dist": f"kwhub-{name.replace('_', '-')}",
              "type_id": f"{family}.{name}", "kwhub_version": kwhub_version()}
    values["title"] = FAMILIES[family].title.format(**values)
    return values


def render_template(text: str, values: dict[str, str], source: str) -> str:
    """Replace every ``{{placeholder}}``; an unknown one is an error naming the template."""
    unknown = sorted({m for m in PLACEHOLDER.findall(text) if m not in values})
    if unknown:
        raise ScaffoldError(f"template {source} uses unknown placeholder(s) {', '.join(unknown)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def plan(name: str, family: str) -> dict[str, str]:
    """``{relative path: content}`` of the plugin package, rendered, nothing written."""
    values = names(name, family)
    fam = FAMILIES[family]
    targets = [(template, target.format(**values), what) for template, target, what in (*COMMON, *fam.files)]
    listing = "\n".join(f"- `{rel}`: {what}" for _, rel, what in targets)
    full = {**values, "usage": fam.usage.format(**values), "files": listing}
    return {rel: render_template((TEMPLATES / template).read_text(encoding="utf-8"), full, template)
            for template, rel, _ in targets}


def write_plugin(name: str, family: str, folder: Path, *, force: bool = False) -> list[Path]:
    """Write the plugin package into ``folder``; refuse a non-empty folder unless ``force``."""
    files = plan(name, family)
    if folder.exists() and not folder.is_dir():
        raise ScaffoldError(f"{folder} is a file", hint="pass --dir with a folder path")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise ScaffoldError(f"{folder} is not empty", hint="choose another --dir, or pass --force to overwrite "
                                                             "the plugin's files in it")
    written = []
    for rel, content in sorted(files.items()):
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written
