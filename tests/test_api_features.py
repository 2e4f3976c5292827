"""API features beyond isolation: pages, CSV readings, outbox retry, configuration reload; the MQTT stream."""

from __future__ import annotations

import csv
import io
import secrets
import time
from datetime import UTC, datetime

from sqlalchemy import select, update

from kwhub.hub.store import audit_entries
from kwhub.hub.store.outbox_tables import outbox_table

OCT = "start=2026-10-01T04:00:00Z&end=2026-11-01T04:00:00Z"


def test_lists_page_with_cursors_and_readings_page_by_time(api_env):
    first = api_env.get("operator", "/api/v1/invoices?limit=1").json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = api_env.get("operator", f"/api/v1/invoices?limit=1&cursor={first['next_cursor']}").json()
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    assert {first["items"][0]["id"], second["items"][0]["id"]} == set(api_env.invoices.values())
    page = api_env.get("tenant_a", f"/api/v1/channels/a.load/readings?{OCT}&limit=1000").json()
    got = len(page["kwh"])
    while page["next_cursor"]:
        page = api_env.get("tenant_a", f"/api/v1/channels/a.load/readings?{OCT}&limit=1000"
                                       f"&cursor={page['next_cursor']}").json()
        got += len(page["kwh"])
    assert got == 31 * 96 and page["kwh"][-1] == 100.0 and page["quality"][-1] == "valid"
    r = api_env.get("tenant_a", f"/api/v1/channels/a.load/readings?{OCT}&format=csv&limit=96")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert r.headers["content-type"].startswith("text/csv") and len(rows) == 96 and r.headers["x-next-cursor"]
    assert rows[0] == {"start": "2026-10-01T04:00:00Z", "kwh": "100.0", "quality": "valid"}
    bad = api_env.get("tenant_a", "/api/v1/channels/a.load/readings?start=2026-10-01T04:00:00&end=2026-10-02T04:00:00")
    assert bad.status_code == 422 and "offset" in bad.json()["detail"]


def test_a_dead_delivery_is_retried_and_the_retry_audited(api_env):
    db = api_env.hub.db
    with db.engine.begin() as conn:
        row_id = conn.execute(select(outbox_table.c.id).limit(1)).scalar_one()
        conn.execute(update(outbox_table).where(outbox_table.c.id == row_id).values(status="dead", last_error="x"))
    assert api_env.post("operator", "/api/v1/outbox/999999/retry").status_code == 404
    r = api_env.post("operator", f"/api/v1/outbox/{row_id}/retry")
    assert r.status_code == 200, r.text
    assert api_env.post("operator", f"/api/v1/outbox/{row_id}/retry").status_code == 409  # pending now
    assert [e.action for e in audit_entries(db, "outbox", str(row_id))] == ["outbox.retry"]


def test_config_reload_takes_a_valid_file_and_refuses_an_invalid_one_with_the_key_path(api_env):
    path = api_env.hub.config.source
    with open(path) as fh:  # noqa: PTH123
        text = fh.read()
    with open(path, "w") as fh:  # noqa: PTH123
        fh.write(text.replace('name = "api test campus"', 'name = "renamed campus"'))
    r = api_env.post("operator", "/api/v1/config/reload", json={"reason": "campus renamed"})
    assert r.status_code == 200 and r.json()["detail"]["changed"] is True
    assert api_env.get("operator", "/api/v1/campus").json()["name"] == "renamed campus"
    with open(path, "a") as fh:  # noqa: PTH123
        fh.write('\n[api]\npage_limit = "many"\n')
    r = api_env.post("operator", "/api/v1/config/reload", json={"reason": "typo"})
    assert r.status_code == 422 and "api.page_limit" in r.json()["detail"]
    assert api_env.get("operator", "/api/v1/campus").json()["name"] == "renamed campus"  # nothing changed
    actions = [e.action for e in audit_entries(api_env.hub.db, "config")]
    assert actions == ["config.reload", "config.reload_refused"]


def test_the_mqtt_stream_writes_closed_intervals_and_its_status(sqlite_db, tmp_path):
    import json

    import tomli_w

    from kwhub.core.timeline import Span
    from kwhub.hub.app import Hub
    from kwhub.hub.config import load_config
    from kwhub.hub.scheduler.streams import mqtt_streams
    from kwhub.hub.store.service_tables import adapter_status_table
    from tests.fixtures.api import campus_toml
    from tests.fixtures.services import need_server
    from tests.test_mqtt import HOST, PORT, _publish

    need_server("Mosquitto", HOST, PORT)
    root = f"kwhub-test/{secrets.token_hex(4)}"
    extra = {"adapters": [{"type": "erp.folder", "id": "drop", "config": {"folder": "out/erp"}},
                          {"type": "meters.mqtt", "id": "plant_mqtt", "config": {
                              "host": HOST, "port": PORT, "topic": f"{root}/+/telemetry", "connect_timeout_s": 5,
                              "channel_map": {"gt1": "gt1.net"},
                              "payload": {"device_topic_level": root.count("/") + 1, "kind": "energy"}}}]}
    path = tmp_path / "kwhub.toml"
    path.write_bytes(tomli_w.dumps(campus_toml(sqlite_db.url, extra)).encode())
    hub = Hub.from_config(load_config(path), database=sqlite_db)
    streams = mqtt_streams(hub, flush_s=0.5)
    assert [s.inst.id for s in streams] == ["plant_mqtt"]
    streams[0].start()
    try:
        time.sleep(1.5)  # subscribed
        t0 = datetime(2026, 10, 1, 4, tzinfo=UTC).timestamp()
        _publish([(f"{root}/gt1/telemetry", json.dumps({"ts": t0 + 900 * (i + 1), "value": 25.0,
                                                        "unit": "kWh"}).encode()) for i in range(4)])
        deadline = time.monotonic() + 15
        series = None
        while time.monotonic() < deadline:
            series = sqlite_db.intervals.read_series("gt1.net", Span(datetime(2026, 10, 1, 4, tzinfo=UTC),
                                                                     datetime(2026, 10, 1, 5, tzinfo=UTC)))
            if len(series) == 4:
                break
            time.sleep(0.3)
    finally:
        streams[0].stop()
    assert series is not None and series.values.tolist() == [25.0] * 4
    with sqlite_db.engine.connect() as conn:
        row = conn.execute(select(adapter_status_table)).one()
    assert row.adapter_id == "plant_mqtt" and row.last_success_at is not None


def test_healthz_shows_each_adapters_last_success_and_error(api_env):
    from kwhub.hub.scheduler.streams import record_status

    ok_at = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
    record_status(api_env.hub.db, "plant_mqtt", ok=True, counts={"scheduled": 10, "ok": 10}, at=ok_at)
    record_status(api_env.hub.db, "gt1_ctl", ok=True, counts={"scheduled": 5, "ok": 4}, at=ok_at)
    record_status(api_env.hub.db, "gt1_ctl", ok=False, error="connection refused", counts={"failed": 1},
                  at=datetime(2026, 11, 3, 12, 5, tzinfo=UTC))
    body = api_env.client.get("/healthz").json()  # no key needed
    adapters = {a["adapter"]: a for a in body["adapters"]}
    assert adapters["plant_mqtt"]["last_success"].startswith("2026-11-03T12:00:00")
    assert adapters["plant_mqtt"]["last_error"] is None and adapters["plant_mqtt"]["polls"] == 10
    gt = adapters["gt1_ctl"]
    assert gt["last_success"].startswith("2026-11-03T12:00:00") and gt["last_error_at"].startswith("2026-11-03T12:05:00")
    assert gt["last_error"] == "connection refused" and (gt["ok"], gt["failed"]) == (4, 1)


def test_an_invoice_pdf_is_served_as_delivered(api_env):
    inv = api_env.invoices["tenant_a"]
    res = api_env.get("tenant_a", f"/api/v1/invoices/{inv}/documents/pdf")
    assert res.status_code == 200, res.text
    # served as bytes; the format's own media type travels in X-Content-Type
    assert res.headers["x-content-type"] == "application/pdf" and res.content.startswith(b"%PDF-")
    assert res.headers["content-disposition"].endswith('.pdf"')
    again = api_env.get("operator", f"/api/v1/invoices/{inv}/documents/pdf")
    assert again.content == res.content  # the same bytes whoever asks, every time
    import io

    from pypdf import PdfReader

    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(res.content)).pages)
    number = api_env.get("operator", f"/api/v1/invoices/{inv}").json()["number"]
    assert number in text
    assert api_env.get("tenant_b", f"/api/v1/invoices/{inv}/documents/pdf").status_code == 404
