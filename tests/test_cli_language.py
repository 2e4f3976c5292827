"""Issue 18 items 2-4: a CLI that starts fast, speaks one language and does not surprise.

* every command answers ``--help``; ``-c`` is ``--config`` wherever it exists and nothing
  else; every command that prints data takes ``--format`` with ``text`` (the default) and
  ``json``; the deprecated ``--json`` still works; ``--format json`` prints one JSON document;
* ``kwhub --help`` imports no command module and no plugin; a command's ``--help`` imports
  neither pandas, lxml, fastapi, pymodbus, reportlab nor the plugins;
* read commands never create a database; an unknown channel and an empty file are errors
  that say what to do; ``env:`` secrets are resolved only by the commands that use them;
  ``kwhub deliver`` says what it does (``--once`` and the daemon mode); the ingest summary
  explains its columns and lists the settled periods it made stale.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from kwhub.hub.cli.main import COMMANDS, app
from tests.fixtures.settlement import SETTLE_TOML, cli_campus, write_period

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "kwhub_long.csv"

# Commands that print data: each takes --format with text (default) and json.
DATA_COMMANDS = {
    "config check", "plugins list", "adapters check", "ingest", "readings", "vee report", "settle",
    "invoices list", "invoices show", "explain", "runs list", "runs show", "report energy",
    "report allocation", "owners statement", "emissions", "deliver", "outbox list", "verify",
    "market bid", "market variance", "esg certificates list", "demo", "keys create", "keys list",
    "jobs list", "audit list", "contracts history",
}
# Commands whose --format names the document they write (a file format), not how to print.
DOCUMENT_FORMAT = {"invoices render", "esg report", "export"}
# Commands that read the store: they must never create a database.
READ_ONLY = [
    ["readings", "--summary"], ["readings", "x", "--start", "2026-10-01"], ["invoices", "list"],
    ["invoices", "show", "X-1"], ["explain", "X-1", "--line", "1"], ["runs", "list"], ["outbox", "list"],
    ["verify"], ["vee", "report"], ["report", "energy", "--period", "2026-10"],
    ["emissions", "--period", "2026-10"], ["esg", "certificates", "list"], ["keys", "list"], ["jobs", "list"],
    ["audit", "list"],
]


def _leaves() -> list[tuple[list[str], Any]]:
    root = typer.main.get_command(app)
    ctx = typer.Context(root)
    out: list[tuple[list[str], Any]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])
        else:
            out.append((path, cmd))

    walk(root, [])
    return out


def _options(cmd: Any) -> list[Any]:
    return [p for p in cmd.params if type(p).__name__.endswith("Option")]


def test_the_command_table_matches_the_modules():
    """COMMANDS (what ``kwhub --help`` lists without importing) names what each module registers."""
    import importlib

    by_module: dict[str, set[str]] = {}
    for name, (module, short) in COMMANDS.items():
        by_module.setdefault(module, set()).add(name)
        assert short and "\n" not in short, name
    for module, names in by_module.items():
        sub = typer.Typer()
        importlib.import_module(module).register(sub)
        assert set(typer.main.get_group(sub).commands) == names, module


def test_every_command_has_help_and_the_common_options():
    runner = CliRunner()
    leaves = _leaves()
    assert len(leaves) >= 45
    seen = set()
    for path, cmd in leaves:
        name = " ".join(path)
        seen.add(name)
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (name, res.output)
        assert "Usage: kwhub" in res.output, name
        for opt in _options(cmd):
            if opt.name == "config":
                assert sorted(opt.opts) == ["--config", "-c"], name  # one spelling everywhere
            else:
                assert "-c" not in opt.opts, (name, opt.opts)  # -c means --config and nothing else
            if opt.name == "as_json":
                assert opt.hidden, name  # the deprecated flag is not advertised
        fmt = next((o for o in _options(cmd) if "--format" in o.opts), None)
        if name in DATA_COMMANDS:
            assert fmt is not None, name
            assert fmt.default == "text" and "json" in (fmt.help or ""), name
        elif fmt is not None:
            assert name in DOCUMENT_FORMAT, name
    assert DATA_COMMANDS <= seen


def test_help_shows_brackets_as_written():
    """Help text is not Rich markup: [service] and [[scheduler.jobs]] stay as written."""
    out = CliRunner().invoke(app, ["serve", "--help"]).output
    assert "[service] host" in out and "[[scheduler.jobs]]" in out and "\\[" not in out


def _imported_after(args: list[str], cwd: Path) -> set[str]:
    code = ("import sys\nfrom kwhub.hub.cli.main import app\n"
            "try:\n    app(args=sys.argv[1:], prog_name='kwhub')\nexcept SystemExit:\n    pass\n"
            "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    assert "Usage: kwhub" in proc.stdout, proc.stdout + proc.stderr
    return set(proc.stderr.split())


HEAVY = ("pandas", "lxml", "fastapi", "pymodbus", "reportlab", "asyncssh", "uvicorn", "alembic")


def test_help_imports_no_command_module_and_no_plugin(tmp_path):
    mods = _imported_after(["--help"], tmp_path)
    assert not [m for m in mods if m.startswith(("kwhub.hub.cli.", "kwhub.plugins", "kwhub.hub.registry"))
                and m not in ("kwhub.hub.cli.main",)]
    assert not [m for m in mods if m.split(".")[0] in (*HEAVY, "numpy", "sqlalchemy", "pydantic")]
    for args in (["readings", "--help"], ["invoices", "list", "--help"], ["deliver", "--help"],
                 ["serve", "--help"], ["market", "bid", "--help"], ["settle", "--help"], ["esg", "report", "--help"]):
        mods = _imported_after(args, tmp_path)
        assert not [m for m in mods if m.split(".")[0] in (*HEAVY, "numpy", "sqlalchemy", "pydantic")], args
        assert not [m for m in mods if m.startswith("kwhub.plugins")], args


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A small store: the embedded default configuration and one ingested CSV file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meter.csv").write_bytes(SAMPLE.read_bytes())
    res = CliRunner().invoke(app, ["ingest", "meter.csv", "--adapter", "meters.csv"])
    assert res.exit_code == 0, res.output
    return tmp_path


def test_format_json_prints_one_json_document(store):
    runner = CliRunner()
    for args in (["readings", "--summary"], ["readings", "hall_a.load", "--start", "2024-03-01"],
                 ["readings", "hall_a.load", "--periods", "--start", "2024-03-01"], ["invoices", "list"],
                 ["runs", "list"], ["outbox", "list"], ["verify"], ["vee", "report"], ["plugins", "list"],
                 ["esg", "certificates", "list"], ["keys", "list"], ["jobs", "list"], ["audit", "list"]):
        res = runner.invoke(app, [*args, "--format", "json"])
        assert res.exit_code == 0, (args, res.output)
        json.loads(res.stdout)
    # the deprecated spellings still work
    assert json.loads(runner.invoke(app, ["plugins", "list", "--json"]).stdout)["plugins"]
    assert runner.invoke(app, ["invoices", "list", "--format", "table"]).exit_code == 0
    bad = runner.invoke(app, ["invoices", "list", "--format", "yaml"])
    assert bad.exception.exit_code == 2 and "--format must be one of text, json, not 'yaml'" in str(bad.exception)


def test_readings_text_csv_json_and_no_python_reprs(store):
    runner = CliRunner()
    text = runner.invoke(app, ["readings", "hall_a.load", "--start", "2024-03-01"]).stdout
    assert text.splitlines()[0].split() == ["channel_id", "interval_start", "interval_minutes", "kwh", "quality", "rule"]
    assert "None" not in text and "5012.5" in text
    csv_ = runner.invoke(app, ["readings", "hall_a.load", "--start", "2024-03-01", "--format", "csv"]).stdout
    assert csv_.splitlines()[0] == "channel_id,interval_start,interval_minutes,kwh,quality,rule"


def test_an_unknown_channel_is_an_error_that_names_the_known_ones(store):
    res = CliRunner().invoke(app, ["readings", "hall_b.load", "--start", "2024-03-01"])
    assert res.exit_code != 0
    exc = res.exception
    assert "unknown channel 'hall_b.load'" in str(exc) and "hall_a.load" in exc.hint and "--summary" in exc.hint
    res = CliRunner().invoke(app, ["readings", "hall_b.load", "--periods", "--start", "2024-03-01"])
    assert res.exit_code != 0 and "unknown channel" in str(res.exception)


def _run_guarded(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kwhub.hub.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=180, env={**os.environ, "COLUMNS": "200"})


def test_read_commands_never_create_a_database(tmp_path):
    for args in READ_ONLY:
        res = _run_guarded(args, tmp_path)
        assert res.returncode == 1, (args, res.stdout, res.stderr)
        flat = " ".join(res.stderr.split())
        assert "no database at" in flat and "nothing was created" in flat and "kwhub init" in flat, (args, flat)
        assert not (tmp_path / "kwhub.db").exists(), args
    (tmp_path / "kwhub.toml").write_text(FOLDER_TOML)  # deliver: a transport, but no database yet
    res = _run_guarded(["deliver", "--once"], tmp_path)
    assert res.returncode == 1 and "no database at" in " ".join(res.stderr.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kwhub.toml"]


def test_an_empty_file_is_an_error_that_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.csv").write_bytes(b"")
    res = CliRunner().invoke(app, ["ingest", "empty.csv"])
    assert res.exit_code == 1 and "empty (0 bytes)" in str(res.exception) and "pass --adapter" not in str(res.exception)
    assert "export or transfer" in res.exception.hint
    # among several files: that file is rejected, the others are stored
    (tmp_path / "meter.csv").write_bytes(SAMPLE.read_bytes())
    res = CliRunner().invoke(app, ["ingest", "meter.csv", "empty.csv", "--adapter", "meters.csv",
                                   "--format", "json"])
    assert res.exit_code == 1 and "empty.csv: the file is empty (0 bytes)" in str(res.exception)
    assert json.loads(res.stdout)["files"][0]["intervals"] == 8


WEBHOOK_TOML = """
[[sites]]
id = "campus"

[[adapters]]
type = "erp.webhook"
id = "erp"
[adapters.config]
url = "http://127.0.0.1:9/invoices"
secret = "env:KWHUB_TEST_UNSET_SECRET"
"""


def test_env_secrets_are_resolved_only_by_the_commands_that_use_them(tmp_path, monkeypatch):
    monkeypatch.delenv("KWHUB_TEST_UNSET_SECRET", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kwhub.toml").write_text(WEBHOOK_TOML)
    runner = CliRunner()
    from kwhub.hub.store import Database

    Database.open(work_dir=tmp_path).close()
    res = runner.invoke(app, ["invoices", "list", "--format", "json"])  # an auditor's read needs no ERP secret
    assert res.exit_code == 0 and json.loads(res.stdout) == []
    res = runner.invoke(app, ["adapters", "check", "--format", "json"])  # the check uses the transport
    (row,) = json.loads(res.stdout)
    assert res.exit_code == 1 and row["kind"] == "configuration"
    assert "KWHUB_TEST_UNSET_SECRET" in row["message"] and 'adapters[0] (id="erp").config.secret' in row["message"]
    res = runner.invoke(app, ["deliver", "--once"])  # delivering uses it: a configuration error naming it
    assert res.exit_code != 0 and "KWHUB_TEST_UNSET_SECRET" in str(res.exception)


FOLDER_TOML = """
[[sites]]
id = "campus"

[[adapters]]
type = "erp.folder"
id = "drop"
[adapters.config]
folder = "out"
"""


def test_deliver_says_what_it_does_once_and_as_a_daemon(tmp_path):
    (tmp_path / "kwhub.toml").write_text(FOLDER_TOML)
    from kwhub.hub.store import Database

    Database.open(work_dir=tmp_path).close()
    help_ = _run_guarded(["deliver", "--help"], tmp_path).stdout
    assert "--once" in help_ and "daemon" in help_ and "Ctrl-C" in help_
    once = _run_guarded(["deliver", "--once"], tmp_path)
    assert once.returncode == 0 and "delivered 0, retrying later 0, dead 0" in once.stdout
    assert "nothing left to deliver" in once.stdout
    proc = subprocess.Popen([sys.executable, "-m", "kwhub.hub.cli.main", "deliver", "--poll", "0.2"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        assert "polling every 0.2 s until Ctrl-C" in first and "--once" in first and "drop" in first
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "stopped after 0 pass(es) that did something: delivered 0" in err and "nothing left to deliver" in err



def test_ingest_explains_its_columns_and_lists_the_periods_it_made_stale(tmp_path, monkeypatch):
    from kwhub.hub.store import Database

    (tmp_path / "kwhub.toml").write_text(SETTLE_TOML)
    db = Database.open(work_dir=tmp_path)
    write_period(db, "2026-10", {"a.load": 100.0}, layer="raw")
    write_period(db, "2026-10", {"a.load": 100.0})
    db.close()
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["settle", "--period", "2026-10", "--format", "json"]).exit_code == 0
    explained = runner.invoke(app, ["explain", "OP-000001", "--line", "1"]).stdout
    assert "Allocation: method" in explained and "None" not in explained  # no Python reprs for people
    (tmp_path / "late.csv").write_text("channel_id,interval_start,interval_minutes,kwh\n"
                                       "a.load,2026-10-15T12:00:00Z,15,999\n")
    res = runner.invoke(app, ["ingest", "late.csv", "--adapter", "meters.csv"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    flat = " ".join(res.stdout.split())
    assert "new / changed / same: channel-days stored for the first time / restated" in flat
    assert "settled periods made stale" in flat
    assert "ppa-a 2026-10 (initial, run ppa-a:2026-10:initial:1" in flat
    assert "kwhub settle --period 2026-10 --contract ppa-a --version final" in flat
    # JSON says the same
    (tmp_path / "later.csv").write_text("channel_id,interval_start,interval_minutes,kwh\n"
                                        "a.load,2026-10-16T12:00:00Z,15,998\n")
    res = runner.invoke(app, ["ingest", "later.csv", "--adapter", "meters.csv", "--format", "json"])
    assert json.loads(res.stdout)["made_stale"] == []  # already stale: not made stale again


def test_messages_show_square_brackets_verbatim(tmp_path):
    """Rich never eats [[contracts]] or [settlement] from a message, a hint or help text."""
    (tmp_path / "kwhub.toml").write_text('[[sites]]\nid = "campus"\n')
    res = _run_guarded(["settle", "--period", "2026-10"], tmp_path)
    assert res.returncode == 2 and "add [[contracts]] to kwhub.toml" in res.stderr
    help_ = " ".join(_run_guarded(["settle", "--help"], tmp_path).stdout.split())
    assert "default from [settlement]" in help_


def test_settle_queues_for_a_transport_whose_secret_is_not_set(tmp_path, monkeypatch):
    """Queuing a document for delivery does not build the transport; `kwhub deliver` does and
    names the unset variable."""
    monkeypatch.delenv("KWHUB_TEST_UNSET_SECRET", raising=False)
    toml = SETTLE_TOML.replace('name = "Hall A Compute Inc."\n', 'name = "Hall A Compute Inc."\n'
                               '[parties.delivery]\nformats = ["json"]\ntransports = ["erp"]\n')
    runner = cli_campus(tmp_path, monkeypatch, toml + WEBHOOK_TOML.replace('[[sites]]\nid = "campus"\n', ""),
                        {"a.load": 100.0})
    res = runner.invoke(app, ["settle", "--period", "2026-10", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(runner.invoke(app, ["outbox", "list", "--format", "json"]).stdout)[0]["invoice_number"] \
        == "OP-000001"
    res = runner.invoke(app, ["deliver", "--once"])
    assert res.exit_code != 0 and "KWHUB_TEST_UNSET_SECRET" in str(res.exception)
