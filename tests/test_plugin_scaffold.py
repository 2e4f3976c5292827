"""``kwhub plugins new``: a scaffolded plugin installs into a fresh venv, is listed, passes the kit, ingests its sample.

The venv is made with ``--system-site-packages`` and a ``.pth`` file that adds this test
environment's site-packages, so kwhub and its dependencies come from here; the plugin is
installed with ``pip --no-deps``. Expected kWh are summed by hand from the template sample.
"""

from __future__ import annotations

import importlib.util
import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from kwhub.hub.scaffold import (
    COMMON,
    FAMILIES,
    TEMPLATES,
    ScaffoldError,
    names,
    plan,
    render_template,
    write_plugin,
)

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "plugins" / "kwhub_acme"
CLI = [sys.executable, "-m", "kwhub.hub.cli.main"]


def _env(**extra: str) -> dict[str, str]:
    """The environment of a real installation: entry points loaded, plugin failures fatal."""
    env = {k: v for k, v in os.environ.items() if k not in ("KWHUB_NO_ENTRYPOINTS", "KWHUB_CONFIG", "PYTHONPATH")}
    env.update({"KWHUB_STRICT_PLUGINS": "1", "KWHUB_SHARED": str(os.environ.get("KWHUB_SHARED", ROOT.parent / "shared"))})
    env.update(extra)
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _tree(folder: Path) -> dict[str, str]:
    skip = {"__pycache__", "build", ".pytest_cache"}
    return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*"))
            if p.is_file() and not skip & set(p.relative_to(folder).parts) and ".egg-info" not in str(p)}


# ------------------------------------------------------------------ the tutorial


def test_the_tutorial_plugin_is_what_the_scaffold_writes():
    fresh = plan("acme", "meters")
    assert _tree(TUTORIAL) == fresh, (
        "docs/plugins/kwhub_acme differs from the meters template; write it again with "
        "`kwhub plugins new acme --family meters --dir docs/plugins/kwhub_acme --force`")


def test_the_tutorial_text_walks_through_every_file_of_the_tutorial_plugin():
    text = (ROOT / "docs" / "plugins" / "README.md").read_text()
    for path in plan("acme", "meters"):
        assert f"`{path}`" in text, path
    assert "kwhub plugins new acme --family meters" in text


# ------------------------------------------------------------------ a fresh venv


def _builds_without_isolation() -> bool:
    """Whether this environment can build a setuptools wheel offline (setuptools >= 70.1 or the wheel package)."""
    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def test_a_scaffolded_plugin_installed_in_a_fresh_venv_is_listed_passes_the_kit_and_ingests(tmp_path):
    from typer.testing import CliRunner

    from kwhub.hub.cli.main import app

    plugin = tmp_path / "kwhub_acme"
    result = CliRunner().invoke(app, ["plugins", "new", "acme", "--family", "meters", "--dir", str(plugin)])
    assert result.exit_code == 0, result.output
    assert "tests/test_acme.py" in result.output
    assert _tree(plugin) == _tree(TUTORIAL)  # the tutorial, exactly

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    child_site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           tmp_path).strip())
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (child_site / "_kwhub_test_environment.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({p!r})" for p in parents) + "\n")

    pip = [str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(plugin)]
    if _builds_without_isolation():
        pip.insert(-1, "--no-build-isolation")
    _run(pip, tmp_path, timeout=300)
    listed = json.loads(_run([str(python), "-m", "kwhub.hub.cli.main", "plugins", "list", "--json"], tmp_path))
    acme = next(p for p in listed["plugins"] if p["name"] == "acme")
    assert (acme["distribution"], acme["version"], acme["module"], acme["adapters"], acme["error"]) == \
        ("kwhub-acme", "0.1.0", "kwhub_acme", ["meters.acme"], None)  # the installed distribution
    assert listed["adapters"]["meters.acme"] == {"family": "meters", "plugin": "acme", "capabilities": ["file"]}

    tests = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(plugin / "tests")], tmp_path,
                 timeout=300)
    assert "5 passed" in tests, tests

    work = tmp_path / "work"
    work.mkdir()
    sample = plugin / "samples" / "acme_export.csv"
    ingested = json.loads(_run([str(python), "-m", "kwhub.hub.cli.main", "ingest", str(sample), "--format", "json"],
                               work))
    [report] = ingested["files"]
    assert (report["adapter"], report["intervals"], sorted(report["channels"])) == \
        ("meters.acme", 8, ["acme.m1", "acme.m2"])  # claimed by the plugin's sniffer, no --adapter
    assert ingested["errors"] == []
    summary = json.loads(_run([str(python), "-m", "kwhub.hub.cli.main", "readings", "--summary", "--format", "json"],
                              work))
    totals = {c["channel_id"]: (c["intervals"], c["total_kwh"]) for c in summary["channels"]}
    # m1: 12.5 + 13.0 + 12.75 + 12.25 = 50.5 kWh; m2: 3.0 + 3.5 + 4.0 + 4.5 = 15.0 kWh (four quarter-hours each)
    assert totals == {"acme.m1": (4, 50.5), "acme.m2": (4, 15.0)}


# ------------------------------------------------------------------ every family


def test_every_family_scaffolds_a_plugin_whose_own_tests_pass_and_lint_clean(tmp_path):
    roots = []
    for family in FAMILIES:
        root = tmp_path / family
        write_plugin(f"acme_{family}", family, root)
        roots.append(root)
    _run([sys.executable, "-m", "ruff", "check", "--quiet", "--select", "E,F,W,I,B,UP", *map(str, roots)], tmp_path)
    env = _env(PYTHONPATH=os.pathsep.join(map(str, roots)))
    out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(str(r / "tests") for r in roots)],
               tmp_path, env=env, timeout=300)
    assert "22 passed" in out, out


def test_the_scaffolded_package_names_and_entry_point(tmp_path):
    files = plan("solar_gw", "markets")
    assert sorted(files) == ["README.md", "kwhub_solar_gw/__init__.py", "pyproject.toml",
                             "samples/solar_gw_prices.csv", "tests/test_solar_gw.py"]
    pyproject = files["pyproject.toml"]
    assert 'name = "kwhub-solar-gw"' in pyproject
    assert '[project.entry-points.kwhub]\nsolar_gw = "kwhub_solar_gw"' in pyproject
    assert 'type_id: ClassVar[str] = "markets.solar_gw"' in files["kwhub_solar_gw/__init__.py"]
    assert "class SolarGwPrices(MarketAdapter)" in files["kwhub_solar_gw/__init__.py"]
    assert all("{{" not in text for text in files.values())


@pytest.mark.parametrize("bad, hint", [("Acme", "'acme'"), ("acme-gw", "'acme_gw'"), ("9acme", "e.g."), ("", "e.g.")])
def test_a_bad_name_is_refused_with_a_suggestion(bad, hint):
    with pytest.raises(ScaffoldError, match="not a lower-case Python identifier") as err:
        names(bad, "meters")
    assert hint in err.value.hint


def test_an_unknown_placeholder_in_a_template_is_an_error():
    with pytest.raises(ScaffoldError, match="x.tmpl uses unknown placeholder"):
        render_template("{{name}} {{nmae}}", names("acme", "erp"), "x.tmpl")


def test_every_template_file_is_used_by_a_family():
    used = {t for t, _, _ in (*COMMON, *(f for fam in FAMILIES.values() for f in fam.files))}
    assert {p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.tmpl")} == used


def test_the_cli_refuses_an_occupied_folder_and_an_unknown_family(tmp_path):
    (tmp_path / "kwhub_acme").mkdir()
    (tmp_path / "kwhub_acme" / "notes.txt").write_text("mine")
    out = subprocess.run([*CLI, "plugins", "new", "acme", "--family", "meters"], cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "kwhub_acme is not empty" in out.stderr and "--force" in out.stderr
    out = subprocess.run([*CLI, "plugins", "new", "acme", "--family", "iso"], cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "unknown family 'iso'" in out.stderr and "meters, erp, markets, esg" in out.stderr
    assert (tmp_path / "kwhub_acme" / "notes.txt").read_text() == "mine"


def test_a_name_of_the_longest_allowed_length_scaffolds_lines_of_at_most_120_characters(tmp_path):
    """A 40-character plugin name (the limit) still gives every family's code lines that fit 120 columns."""
    name = "northwind_" + "x" * 29 + "y"
    assert len(name) == 40 and names(name, "meters")["name"] == name
    for family in FAMILIES:
        for rel, text in plan(name, family).items():
            if rel.endswith((".py", ".toml")):
                long = [(n, len(line)) for n, line in enumerate(text.splitlines(), 1) if len(line) > 120]
                assert not long, f"{family}: {rel} lines (number, length) {long}"
        write_plugin(name, family, tmp_path / family)
    _run([sys.executable, "-m", "ruff", "check", "--quiet", "--line-length", "120", "--select", "E,F,W,I,B,UP",
          str(tmp_path)], tmp_path)
