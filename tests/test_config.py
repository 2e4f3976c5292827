"""kwhub.toml validation: every error names its key path; the CLI exits without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kwhub.hub.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "hub" / "templates" / "kwhub.example.toml"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "kwhub.toml"
    p.write_text(text)
    return p


BASE = """
[hub]
name = "t"

[[sites]]
id = "campus"

[[parties]]
id = "op"
name = "Operator"

[[parties]]
id = "t1"
name = "Tenant One"

[[assets]]
id = "gt1"
kind = "gas_turbine"
site = "campus"

[[channels]]
id = "t1.load"
role = "tenant_load"
party = "t1"
interval_minutes = 15
"""


def test_example_config_loads(registry):
    cfg = load_config(EXAMPLE, registry=registry)
    assert cfg.campus.channels and cfg.campus.contracts and cfg.adapters
    assert cfg.database_url.startswith("sqlite:///")


def test_unknown_key_names_the_path(tmp_path, registry):
    p = _write(tmp_path, BASE + '\n[[channels]]\nid = "x"\ncolour = "red"\n')
    with pytest.raises(ConfigError) as e:
        load_config(p, registry=registry)
    assert 'channels[1] (id="x").colour: unknown key' in str(e.value)


def test_wrong_type_names_the_path(tmp_path, registry):
    p = _write(tmp_path, BASE.replace("interval_minutes = 15", 'interval_minutes = "fifteen"'))
    with pytest.raises(ConfigError) as e:
        load_config(p, registry=registry)
    assert 'channels[0] (id="t1.load").interval_minutes' in str(e.value)


def test_dangling_reference_names_the_path(tmp_path, registry):
    p = _write(tmp_path, BASE.replace('party = "t1"', 'party = "nobody"'))
    with pytest.raises(ConfigError) as e:
        load_config(p, registry=registry)
    assert "channels[0] (id=\"t1.load\").party: unknown party 'nobody'" in str(e.value)


def test_adapter_config_is_validated_against_the_plugin(tmp_path, registry):
    text = BASE + '\n[[adapters]]\ntype = "markets.price_file"\nid = "lmp"\n[adapters.config]\npath = "p.csv"\nbogus = 1\n'
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, text), registry=registry)
    assert 'adapters[0] (id="lmp").config.bogus: unknown key' in str(e.value)
    text = BASE + '\n[[adapters]]\ntype = "meters.nope"\nid = "x"\n'
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, text), registry=registry)
    assert "adapters[0] (id=\"x\").type: no plugin registers adapter type 'meters.nope'" in str(e.value)


def test_missing_secret_names_the_path(tmp_path, registry, monkeypatch):
    from typing import ClassVar

    from pydantic import SecretStr

    from kwhub.core.adapters import AdapterConfig, EsgReporter
    from kwhub.hub.registry import load_plugins

    class Cfg(AdapterConfig):
        token: SecretStr

    class Secretive(EsgReporter):
        type_id: ClassVar[str] = "esg.secretive"
        Config = Cfg

    class Plugin:
        from kwhub.core.hookspecs import hookimpl

        @hookimpl
        def kwhub_register_esg_adapters(self, register):
            register(Secretive)

    reg = load_plugins(use_entry_points=False, extra=[("secretive", Plugin())])
    monkeypatch.delenv("KWHUB_TEST_TOKEN", raising=False)
    text = BASE + '\n[[adapters]]\ntype = "esg.secretive"\nid = "s"\n[adapters.config]\ntoken = "env:KWHUB_TEST_TOKEN"\n'
    cfg = load_config(_write(tmp_path, text), registry=reg)  # loading does not need the secret
    with pytest.raises(ConfigError) as e:
        cfg.adapters["s"].config  # noqa: B018 - using the instance resolves it
    msg = str(e.value)
    assert 'adapters[0] (id="s").config' in msg and "token" in msg and "KWHUB_TEST_TOKEN" in msg
    monkeypatch.setenv("KWHUB_TEST_TOKEN", "s3cret")
    cfg = load_config(_write(tmp_path, text), registry=reg)
    inst = cfg.adapters["s"]
    assert inst.config.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(inst.config)


def test_toml_syntax_error_names_the_file(tmp_path, registry):
    p = _write(tmp_path, "[hub\nname=1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, registry=registry)
    assert str(p) in str(e.value) and "line 1" in str(e.value)


def test_embedded_default_without_a_file(tmp_path, registry):
    cfg = load_config(None, work_dir=tmp_path, registry=registry)
    assert cfg.embedded_default and cfg.database_url == f"sqlite:///{(tmp_path / 'kwhub.db').as_posix()}"


def test_parse_config_reports_all_problems_at_once(tmp_path, registry):
    data = {"channels": [{"id": "a", "unit": "parsecs"}, {"id": "a", "interval_minutes": 7}]}
    with pytest.raises(ConfigError) as e:
        parse_config(data, "x.toml", tmp_path, registry)
    msg = str(e.value)
    assert 'channels[0] (id="a").unit' in msg and 'channels[1] (id="a").interval_minutes' in msg


def _kwhub(args, cwd, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "kwhub.hub.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_cli_config_error_exits_nonzero_without_traceback(tmp_path):
    _write(tmp_path, BASE + '\n[[channels]]\nid = "x"\ncolour = "red"\n')
    out = _kwhub(["adapters", "check"], tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert 'channels[1] (id="x").colour' in out.stderr


def test_cli_init_writes_a_loadable_example_and_refuses_to_overwrite(tmp_path):
    out = _kwhub(["init", "--dir", str(tmp_path)], tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "kwhub.toml").read_text() == EXAMPLE.read_text()
    again = _kwhub(["init", "--dir", str(tmp_path)], tmp_path)
    assert again.returncode != 0 and "already exists" in again.stderr and "Traceback" not in again.stderr


def test_vee_rule_settings_are_validated_against_registered_rules(tmp_path, registry):
    text = BASE + "\n[vee.groups.default.rules.spike]\nratio = 3.0\nbogus = 1\n[vee.groups.default.rules.nosuch]\nx = 1\n"
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, text), registry=registry)
    msg = str(e.value)
    assert "vee.groups.default.rules.spike.bogus: unknown key" in msg
    assert "vee.groups.default.rules.nosuch: unknown VEE rule 'nosuch'" in msg
