"""Market tables mirror migration 0009; the store keeps every version and refuses silent
changes; [markets] configuration errors name their key; the CLI prints the variance."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal as D

import numpy as np
import pytest
from typer.testing import CliRunner

from kwhub.core.markets.models import Statement, StatementLine
from kwhub.core.markets.prices import MarketPrices
from kwhub.hub.config import ConfigError, parse_config
from kwhub.hub.markets import store
from kwhub.hub.store import Database

MARKET_TABLES = {"market_submission", "market_award_day", "market_price_day", "market_statement",
                 "market_statement_line", "market_shadow_run"}


def test_market_tables_mirror_the_migration(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    assert MARKET_TABLES <= set(db.table_names())
    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    flat = [d for e in diffs for d in (e if isinstance(e, list) else [e])]

    def table(d: tuple) -> str:
        if d[0].endswith("_table"):
            return d[1].name
        if d[0].endswith(("_index", "_constraint")):
            return d[1].table.name
        return d[2]

    assert [d for d in flat if table(d) in MARKET_TABLES] == []


def test_migration_0009_downgrades_and_upgrades(sqlite_db: Database) -> None:
    sqlite_db.downgrade("0008_review_gate")
    assert not MARKET_TABLES & set(sqlite_db.table_names())
    sqlite_db.migrate()
    assert MARKET_TABLES <= set(sqlite_db.table_names())


def _day_prices(version_bump: int = 0) -> MarketPrices:
    from kwhub.core.markets.hour_labels import DayGrid

    grid = DayGrid(date(2026, 11, 1), "America/Chicago", 60)
    units = np.full(25, 3_000_000, dtype=np.int64)
    units[2] += version_bump
    return MarketPrices(iso="ERCOT", node="RN1", market="DA", interval_minutes=60, starts=grid.starts, price_units=units)


def test_price_versions_are_kept_and_equal_days_change_nothing(db: Database) -> None:
    assert store.save_prices(db, [_day_prices()], "America/Chicago") == {"new": 1, "corrected": 0, "unchanged": 0}
    assert store.save_prices(db, [_day_prices()], "America/Chicago") == {"new": 0, "corrected": 0, "unchanged": 1}
    assert store.save_prices(db, [_day_prices(100)], "America/Chicago") == {"new": 0, "corrected": 1, "unchanged": 0}
    versions = store.price_versions(db, "ERCOT", "RN1", "DA", date(2026, 11, 1))
    assert [v for v, _, _ in versions] == [1, 2] and versions[1][2][2] == 3_000_100
    grid = store.load_prices(db, "ERCOT", ["RN1"], "DA", int(_day_prices().starts[0]), 25, 60)
    assert grid.versions == {"RN1/DA/2026-11-01": 2} and grid.ok.all()
    # before the correction arrived, version 1 was the latest
    early = store.load_prices(db, "ERCOT", ["RN1"], "DA", int(_day_prices().starts[0]), 25, 60,
                              as_of=versions[0][1])
    assert early.versions == {"RN1/DA/2026-11-01": 1} and early.units[0, 2] == 3_000_000
    # a part of a day is refused, not stored
    part = _day_prices()
    part.starts, part.price_units = part.starts[:10], part.price_units[:10]
    with pytest.raises(store.MarketStoreError, match="10 of the day's 25"):
        store.save_prices(db, [part], "America/Chicago")


def test_a_statement_id_arriving_with_other_content_is_refused(db: Database) -> None:
    line = StatementLine(code="DAESAMT", resource="RN1", start=datetime(2026, 11, 1, 5, tzinfo=UTC), minutes=60,
                         amount=D("-10.00"))
    st = Statement(iso="ERCOT", operating_day=date(2026, 11, 1), kind="initial", statement_id="S1", lines=(line,))
    pk, new = store.save_statement(db, st, "a" * 64)
    assert new and store.save_statement(db, st, "a" * 64) == (pk, False)
    with pytest.raises(store.MarketStoreError, match="different content"):
        store.save_statement(db, st, "b" * 64)
    (back,) = store.load_statements(db, "ERCOT", date(2026, 11, 1))
    assert back.statement.lines == (line,) and back.statement.total() == D("-10.00")


def _config_data(**markets) -> dict:  # noqa: ANN003
    return {
        "parties": [{"id": "p1", "name": "P1"}],
        "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 1000, "owners": [{"party": "p1", "share": "1"}]},
                   {"id": "pv", "kind": "solar", "capacity_kw": 1000}],
        "channels": [{"id": "poi.export", "role": "grid_export"}],
        "adapters": [{"type": "markets.ercot", "id": "ercot", "config": {"url": "http://127.0.0.1:9"}}],
        "markets": markets,
    }


def test_markets_configuration_errors_name_their_keys(tmp_path) -> None:
    bad = _config_data(adapters={"ERCOT": "ercot", "PJM": "nope"},
                       resources=[{"iso": "ERCOT", "resource": "RN1", "meter": ["poi.missing"], "asset": "pv"},
                                  {"iso": "CAISO", "resource": "G1", "meter": []}])
    with pytest.raises(ConfigError) as err:
        parse_config(bad, "kwhub.toml", tmp_path)
    text = str(err.value)
    assert "markets.adapters.PJM: unknown adapter instance 'nope'" in text
    assert 'markets.resources[0] (resource="RN1").meter: unknown channel \'poi.missing\'' in text
    assert "asset 'pv' has no owners" in text
    assert 'markets.resources[1] (resource="G1").iso: no adapter instance for CAISO' in text
    ok = _config_data(adapters={"ERCOT": "ercot"},
                      resources=[{"iso": "ERCOT", "resource": "RN1", "meter": ["poi.export"], "asset": "gt1"}])
    assert parse_config(ok, "kwhub.toml", tmp_path).file.markets.resource("ERCOT", "RN1").asset == "gt1"


def test_cli_variance_prints_the_report_and_json(sqlite_db: Database, tmp_path, monkeypatch) -> None:
    import tomli_w

    from kwhub.hub.cli.main import app
    from kwhub.hub.markets import service

    line = StatementLine(code="DAESAMT", resource="RN1", start=datetime(2026, 10, 15, 5, tzinfo=UTC), minutes=60,
                         amount=D("-10.00"), determinants={"DASPP": D("20.00"), "DAES": D("0.5")})
    data = _config_data(adapters={"ERCOT": "ercot"},
                        resources=[{"iso": "ERCOT", "resource": "RN1", "meter": ["poi.export"], "asset": "gt1"}])
    (tmp_path / "kwhub.toml").write_bytes(tomli_w.dumps(data).encode())
    store.save_statement(sqlite_db, Statement(iso="ERCOT", operating_day=date(2026, 10, 15), kind="initial",
                                              statement_id="S1", market="DA", lines=(line,)), "c" * 64)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    out = runner.invoke(app, ["market", "variance", "--iso", "ERCOT", "--day", "2026-10-15", "--json"])
    assert out.exit_code == 0, out.output
    (report,) = json.loads(out.output)
    # kwhub has no award and no price stored: the ISO's -10.00 is unexplained, shadow 0.00
    assert report["codes"][0] == {"code": "DAESAMT", "lines": 1,
                                  "shadow": "0.00", "iso": "-10.00", "variance": "10.00", "outside_tolerance": 1}
    assert report["lines"][0]["interval"] == "2026-10-15 HE01" and report["lines"][0]["cause"] == "undetermined"
    assert "no day-ahead SPP" in report["lines"][0]["detail"]
    out = runner.invoke(app, ["market", "variance", "--iso", "ERCOT", "--day", "2026-10-15"])
    assert out.exit_code == 0 and "Lines outside the tolerance" in out.output and "HE01" in out.output
    out = runner.invoke(app, ["market", "variance", "--iso", "ERCOT", "--day", "2026-10-16"])
    assert "no ERCOT statement of 2026-10-16" in str(out.exception)  # the guarded CLI prints it, exit 1
    assert service.RT_MINUTES["ERCOT"] == 15


def test_api_serves_the_variance_to_operators_and_auditors_only(sqlite_db: Database, tmp_path) -> None:
    import tomli_w
    from fastapi.testclient import TestClient

    from kwhub.hub.api.app import create_app
    from kwhub.hub.api.keys import CACHE, create_key
    from kwhub.hub.app import Hub
    from kwhub.hub.config import load_config

    line = StatementLine(code="DAESAMT", resource="RN1", start=datetime(2026, 10, 15, 5, tzinfo=UTC), minutes=60,
                         amount=D("-10.00"), determinants={"DASPP": D("20.00"), "DAES": D("0.5")})
    data = _config_data(adapters={"ERCOT": "ercot"},
                        resources=[{"iso": "ERCOT", "resource": "RN1", "meter": ["poi.export"], "asset": "gt1"}])
    data["hub"] = {"name": "market api test", "timezone": "America/Chicago", "database": sqlite_db.url}
    (tmp_path / "kwhub.toml").write_bytes(tomli_w.dumps(data).encode())
    store.save_statement(sqlite_db, Statement(iso="ERCOT", operating_day=date(2026, 10, 15), kind="initial",
                                              statement_id="S1", market="DA", lines=(line,)), "c" * 64)
    hub = Hub.from_config(load_config(tmp_path / "kwhub.toml"), database=sqlite_db)
    CACHE.forget()
    keys = {role: create_key(sqlite_db, role=role, party=party, days=30, max_days=366, actor="test").token
            for role, party in (("operator", ""), ("auditor", ""), ("tenant", "p1"))}
    client = TestClient(create_app(hub, access_log=False))

    def get(role: str, path: str):  # noqa: ANN202
        return client.get(path, headers={"Authorization": f"Bearer {keys[role]}"})

    for role in ("operator", "auditor"):
        res = get(role, "/api/v1/markets/ERCOT/variance?day=2026-10-15")
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["iso"] == "ERCOT" and body["day"] == "2026-10-15"
        # no award and no price stored: the ISO's -10.00 is unexplained, shadow 0.00 (as the CLI prints it)
        assert body["statements"][0]["codes"][0] == {"code": "DAESAMT", "lines": 1, "shadow": "0.00",
                                                     "iso": "-10.00", "variance": "10.00", "outside_tolerance": 1}
    assert get("tenant", "/api/v1/markets/ERCOT/variance?day=2026-10-15").status_code == 403
    missing = get("operator", "/api/v1/markets/ERCOT/variance?day=2026-10-16")
    assert missing.status_code == 404 and "no ERCOT statement of 2026-10-16" in missing.json()["detail"]
    assert get("operator", "/api/v1/markets/MISO/variance?day=2026-10-15").status_code == 422
    assert get("operator", "/api/v1/markets/ERCOT/variance?day=2026-10-15&statement=S9").status_code == 404
