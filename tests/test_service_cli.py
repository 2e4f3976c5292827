"""``kwhub keys``, ``jobs``, ``audit`` and ``serve`` on the command line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import tomli_w
from typer.testing import CliRunner

from kwhub.hub.cli.main import app
from tests.fixtures.api import campus_toml

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, extra: dict | None = None) -> Path:
    path = tmp_path / "kwhub.toml"
    path.write_bytes(tomli_w.dumps(campus_toml("sqlite:///kwhub.db", extra)).encode())
    return path


def test_keys_create_list_revoke_and_the_audit_trail(tmp_path, monkeypatch):
    cfg = _config(tmp_path)
    monkeypatch.setenv("KWHUB_ACTOR", "alice")
    runner = CliRunner()
    res = runner.invoke(app, ["keys", "create", "--role", "tenant", "--party", "tenant_a", "--days", "30",
                              "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    key = json.loads(res.output)
    assert key["token"].startswith(f"kwh_{key['id']}_") and key["party"] == "tenant_a"
    res = runner.invoke(app, ["keys", "list", "--config", str(cfg), "--json"])
    listed = json.loads(res.output)
    assert [k["id"] for k in listed] == [key["id"]] and key["token"] not in res.output
    res = runner.invoke(app, ["keys", "create", "--role", "tenant", "--config", str(cfg)])
    assert res.exit_code != 0 and "needs --party" in str(res.exception)
    res = runner.invoke(app, ["keys", "revoke", key["id"], "--reason", "contract ended", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["audit", "list", "--config", str(cfg), "--json"])
    entries = json.loads(res.output)
    assert [(e["action"], e["actor"]) for e in entries] == [("key.revoke", "cli:alice"), ("key.create", "cli:alice")]
    assert entries[0]["detail"]["reason"] == "contract ended"
    res = runner.invoke(app, ["jobs", "list", "--config", str(cfg)])
    assert res.exit_code == 0 and "no job runs yet" in res.output
    res = runner.invoke(app, ["jobs", "schedule", "--config", str(cfg)])
    assert res.exit_code == 0 and "relay" in res.output and "owner: none yet" in res.output


def test_serve_refuses_an_invalid_configuration_with_the_key_path(tmp_path):
    cfg = _config(tmp_path, {"scheduler": {"watch": [{"folder": "inbox", "adapter": "nope"}],
                                           "jobs": [{"id": "x", "function": "no.such.module:fn", "every_s": 5}]}})
    res = CliRunner().invoke(app, ["serve", "--config", str(cfg)])
    assert res.exit_code != 0
    proc = subprocess.run([sys.executable, "-m", "kwhub.hub.cli.main", "serve", "--config", str(cfg)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "scheduler.watch[0].adapter: unknown adapter instance 'nope'" in proc.stderr
    cfg = _config(tmp_path, {"scheduler": {"jobs": [{"id": "x", "function": "no.such.module:fn", "every_s": 5}]}})
    proc = subprocess.run([sys.executable, "-m", "kwhub.hub.cli.main", "serve", "--config", str(cfg)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and 'scheduler.jobs[0] (id="x").function: cannot import' in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_health_and_the_api_logs_json_and_stops_on_sigterm(tmp_path):
    port = _free_port()
    cfg = _config(tmp_path, {"scheduler": {"enabled": True, "heartbeat_s": 0.5, "poll": False, "mqtt": False,
                                           "disabled": ["vee", "close"]}, "service": {"log_format": "json"}})
    res = CliRunner().invoke(app, ["keys", "create", "--role", "operator", "--config", str(cfg), "--json"])
    token = json.loads(res.output)["token"]
    with (tmp_path / "serve.log").open("w") as log:  # (the child keeps its own copy of the handle)
        proc = subprocess.Popen([sys.executable, "-m", "kwhub.hub.cli.main", "serve", "--config", str(cfg),
                                 "--port", str(port)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert health is not None and health.status_code == 200, health and health.text
        body = health.json()
        assert body["database"]["ok"] and body["scheduler"]["this_process"] == "owner"
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/campus", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["name"] == "api test campus"
        assert httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()["info"]["title"] == "kwhub"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0
    lines = [json.loads(ln) for ln in (tmp_path / "serve.log").read_text().splitlines() if ln.startswith("{")]
    msgs = {ln["msg"] for ln in lines}
    assert {"kwhub serve started", "kwhub serve stopped"} <= msgs
    access = [ln for ln in lines if ln.get("path") == "/api/v1/campus"]
    assert access and access[0]["status"] == 200 and access[0]["key"] == token.split("_")[1]
