"""The dashboard through FastAPI's TestClient: sign-in, CSRF, roles and tenant isolation, every page's content.

Figures are hand-computed from the test campus (tests.fixtures.settlement): tenant A draws
100 kWh per 15 minutes in October (400 kW) and 1,000 kWh in November (4,000 kW); tenant B
50 kWh (200 kW) in both. November 2026 has 30 days and a 25-hour day (DST ends on the 1st):
2,884 intervals.
"""

from __future__ import annotations

import re
from decimal import Decimal

import numpy as np
from sqlalchemy import select

from kwhub.hub.store import audit_entries
from kwhub.hub.store.outbox_tables import outbox_table
from tests.fixtures.ui import csrf_of, signed_in

PAGES = ["/ui/campus", "/ui/campus/flow", "/ui/runs", "/ui/invoices", "/ui/deliveries", "/ui/quality",
         "/ui/owners", "/ui/emissions", "/ui/markets", "/ui/jobs", "/ui/audit", "/ui/keys"]


def _text(html: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.S)
    assert m, f"no #{element_id} on the page"
    return m.group(1).strip()


def _row(html: str, attr: str, value: str) -> str:
    m = re.search(rf'<tr {attr}="{re.escape(value)}">(.*?)</tr>', html, re.S)
    assert m, f"no row {attr}={value}"
    return m.group(1)


def _cells(row_html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row_html, re.S)]


def test_pages_send_a_browser_without_a_session_to_sign_in_and_the_cookie_is_hardened(ui_env_sqlite):
    from fastapi.testclient import TestClient

    env = ui_env_sqlite
    client = TestClient(env.api.app)
    r = client.get("/ui/invoices", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login?next=/ui/invoices"
    frag = client.get("/ui/campus/flow", headers={"HX-Request": "true"}, follow_redirects=False)
    assert frag.status_code == 401 and frag.headers["HX-Redirect"].startswith("/ui/login")
    form = client.get("/ui/login")
    token = csrf_of(form.text)
    assert client.post("/ui/login", data={"key": env.api.keys["operator"]}).status_code == 403  # no CSRF token
    bad = client.post("/ui/login", data={"key": "kwh_000000000000_nope", "csrf_token": token})
    assert bad.status_code == 401 and "unknown, expired or revoked" in bad.text
    token = csrf_of(bad.text)
    ok = client.post("/ui/login", data={"key": env.api.keys["operator"], "csrf_token": token,
                                        "next": "https://evil.example/"}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/ui/campus"  # no open redirect
    assert "script-src 'self'" in client.get("/ui/login").headers["content-security-policy"]
    cookie = [h for h in ok.headers.get_list("set-cookie") if h.startswith("kwhub_session=")][0].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    assert env.api.keys["operator"] not in ok.headers.get("set-cookie", "")  # the key never goes to the browser
    assert client.get("/ui/invoices").status_code == 200
    # sign out needs the token too, then the session is gone
    assert client.post("/ui/logout", data={"csrf_token": "wrong"}).status_code == 403
    page = client.get("/ui/invoices")
    assert client.post("/ui/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False).status_code == 303
    assert client.get("/ui/invoices", follow_redirects=False).status_code == 303


def test_every_page_renders_for_each_role_and_keys_are_for_operators_only(ui_env_sqlite):
    for who in ("operator", "auditor", "tenant_a"):
        client, _ = signed_in(ui_env_sqlite, who)
        for path in PAGES:
            r = client.get(path)
            role_may = {"/ui/keys": who == "operator", "/ui/deliveries": who != "tenant_a",
                        "/ui/jobs": who != "tenant_a", "/ui/audit": who != "tenant_a",
                        "/ui/markets": who != "tenant_a"}.get(path, True)
            assert r.status_code == (200 if role_may else 403), (who, path, r.text[-500:])
            if r.status_code == 403:
                assert "lacks the scope" in r.text or "an operator or auditor key sees them" in r.text
            assert "http://" not in r.text.replace("http://www.w3.org", "") and "https://" not in r.text, path


def test_invoice_pages_show_the_apis_totals_and_every_format(ui_env_sqlite):
    env = ui_env_sqlite
    client, _ = signed_in(env, "operator")
    listing = client.get("/ui/invoices").text
    for inv_id in env.api.invoices.values():
        api = env.api.get("operator", f"/api/v1/invoices/{inv_id}").json()
        page = client.get(f"/ui/invoices/{inv_id}").text
        want = f"{float(api['total']):,.2f} {api['currency']}"
        assert _text(page, "invoice-total") == want
        assert _cells(_row(listing, "data-invoice", inv_id))[-1] == want
        assert len(re.findall(r'<tr><td class="num">\d+</td>', page)) == len(api["lines"])
    # hand-computed: tenant A, October: 297.6 MWh x 50 + 400 kW x 10 + 60 % of 1,000 = 19,480.00 USD
    assert _text(client.get(f"/ui/invoices/{env.api.invoices['tenant_a']}").text, "invoice-total") == "19,480.00 USD"
    inv = env.api.invoices["tenant_a"]
    page = client.get(f"/ui/invoices/{inv}").text
    for fmt in ("pdf", "json", "ubl", "cii", "csv"):
        assert f'/ui/invoices/{inv}/documents/{fmt}"' in page
    why = client.get(f"/ui/invoices/{env.api.invoices['tenant_b']}/lines/1")
    # hand-computed: tenant B's gt1 share, 89,280 kWh = 89.280 MWh x 40 $/MWh = 3,571.20 USD
    assert why.status_code == 200 and "3,571.20 USD" in why.text and "pro_rata" in why.text and "89280.0" in why.text
    assert client.get(f"/ui/invoices/{inv}/lines/99").status_code == 404
    assert 'href="/ui/invoices/' + inv + '/lines/1"' in page
    pdf = client.get(f"/ui/invoices/{inv}/documents/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF") and pdf.headers["content-type"] == "application/pdf"
    ubl_ui = client.get(f"/ui/invoices/{inv}/documents/ubl").content
    assert ubl_ui == env.api.get("operator", f"/api/v1/invoices/{inv}/documents/ubl").content


def test_a_tenant_session_sees_only_its_own_documents_and_gets_404_for_another_tenants(ui_env_sqlite):
    env = ui_env_sqlite
    client, _ = signed_in(env, "tenant_a")
    other = env.api.invoices["tenant_b"]
    r = client.get(f"/ui/invoices/{other}")
    assert r.status_code == 404 and "Not found" in r.text and "19,480" not in r.text and "Hall B" not in r.text
    assert client.get(f"/ui/invoices/{other}/documents/pdf").status_code == 404
    assert client.get(f"/ui/invoices/{other}/lines/1").status_code == 404
    assert client.get(f"/ui/runs/{env.api.runs['tenant_b']}").status_code == 404
    assert client.get(f"/ui/invoices/{env.api.invoices['tenant_a']}").status_code == 200
    listing = client.get("/ui/invoices").text
    assert env.api.invoices["tenant_a"] in listing and other not in listing
    runs = client.get("/ui/runs").text
    assert "ppa-a" in runs and "ppa-b" not in runs
    assert "Approve and issue" not in runs  # a tenant key may not decide (no runs:approve)
    campus = client.get("/ui/campus").text
    assert 'data-party="tenant_b"' not in campus
    quality = client.get("/ui/quality?period=2026-10").text
    assert 'data-channel="a.load"' in quality and 'data-channel="b.load"' not in quality
    assert client.get("/ui/quality/b.load/2026-10-05").status_code == 404


def test_approving_a_held_run_needs_the_csrf_token_and_a_reason_and_issues_it(ui_env_sqlite):
    env = ui_env_sqlite
    client, token = signed_in(env, "operator")
    runs = client.get("/ui/runs").text
    assert "movement: total 184800.00 USD is +848.7 %" in runs  # the gate's reason, shown with the draft
    assert "184,800.00 USD" in runs
    url = f"/ui/runs/{env.held_run}/approve"
    assert client.post(url, data={"reason": "checked"}).status_code == 403
    assert client.post(url, data={"reason": "checked", "csrf_token": "forged"}).status_code == 403
    assert client.post(url, data={"reason": " ", "csrf_token": token}).status_code == 422
    assert env.api.get("operator", f"/api/v1/runs/{env.held_run}").json()["status"] == "held"
    r = client.post(url, data={"reason": "hall A doubled its racks", "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    done = client.get(r.headers["location"]).text
    assert "approved; invoice" in done and "total 184800.00" in done
    run = env.api.get("operator", f"/api/v1/runs/{env.held_run}").json()
    assert run["status"] == "issued"
    decisions = [d for d in run["decisions"] if d["action"] == "run.approve"]
    key_id = env.api.keys["operator"].split("_")[1]
    assert decisions and decisions[0]["actor"] == f"key:{key_id}" and decisions[0]["detail"]["reason"] == "hall A doubled its racks"
    detail = client.get(f"/ui/runs/{env.held_run}").text
    assert "hall A doubled its racks" in detail and "Energy accounting" in detail
    # hand-computed: 2,884 MWh x 50 + 4,000 kW x 10 + 600 = 184,800.00 USD
    page = client.get(f"/ui/invoices/{run['invoice_id']}").text
    assert _text(page, "invoice-total") == "184,800.00 USD"


def test_rejecting_a_held_run_through_the_ui(ui_env_sqlite):
    env = ui_env_sqlite
    client, token = signed_in(env, "operator")
    r = client.post(f"/ui/runs/{env.held_run}/reject", data={"reason": "meter misread", "csrf_token": token})
    assert r.status_code == 200 and "rejected" in r.text
    assert env.api.get("operator", f"/api/v1/runs/{env.held_run}").json()["status"] == "rejected"
    again = client.post(f"/ui/runs/{env.held_run}/reject", data={"reason": "again", "csrf_token": token})
    assert again.status_code == 409


def test_a_dead_letter_is_retried_from_the_deliveries_page(ui_env_sqlite):
    env = ui_env_sqlite
    client, token = signed_in(env, "operator")
    page = client.get("/ui/deliveries").text
    row = _row(page, "data-row", str(env.dead_row))
    assert "dead" in row and "HTTP 503 from the ERP endpoint" in row and f"Retry row {env.dead_row}" in row
    assert client.post(f"/ui/deliveries/{env.dead_row}/retry").status_code == 403  # no token
    r = client.post(f"/ui/deliveries/{env.dead_row}/retry", data={"csrf_token": token})
    assert r.status_code == 200 and "pending again" in r.text
    with env.api.hub.db.engine.connect() as conn:
        status = conn.execute(select(outbox_table.c.status).where(outbox_table.c.id == env.dead_row)).scalar_one()
    assert status == "pending"
    assert [e.action for e in audit_entries(env.api.hub.db, "outbox", str(env.dead_row))] == ["outbox.retry"]
    assert client.post(f"/ui/deliveries/{env.dead_row}/retry", data={"csrf_token": token}).status_code == 409
    auditor, tok = signed_in(env, "auditor")
    assert auditor.post(f"/ui/deliveries/{env.dead_row}/retry", data={"csrf_token": tok}).status_code == 403


def test_campus_now_shows_the_latest_settled_interval_per_tenant(ui_env_sqlite):
    env = ui_env_sqlite
    client, token = signed_in(env, "operator")
    page = client.get("/ui/campus").text
    assert "Period <strong>2026-11</strong>" in page
    b = _cells(_row(page, "data-party", "tenant_b"))
    assert b[1] == "200.0 kW" and b[2] == "144.200 MWh"  # 50 kWh / 15 min; 50 x 2,884 intervals
    assert 'data-party="tenant_a"' not in page  # its November run is still held
    assert 'data-sankey=' in page and 'hx-get="/ui/campus/flow"' in page
    client.post(f"/ui/runs/{env.held_run}/approve", data={"reason": "ok", "csrf_token": token})
    frag = client.get("/ui/campus/flow", headers={"HX-Request": "true"}).text
    assert "<html" not in frag
    a = _cells(_row(frag, "data-party", "tenant_a"))
    assert a[1] == "4,000.0 kW" and a[2] == "2,884.000 MWh"
    oct_page = client.get("/ui/emissions?period=2026-10").text
    assert _cells(_row(oct_page, "data-party", "tenant_a"))[1] == "297.600 MWh"


def test_data_quality_heatmap_counts_flagged_intervals_per_channel_day(ui_env_sqlite):
    from kwhub.core.intervals import ChannelSeries
    from kwhub.core.quality import Quality

    env = ui_env_sqlite
    start = 1_791_172_800  # 2026-10-05T04:00:00Z = local midnight in New York (EDT)
    starts = np.array([start + 3600, start + 4500, start + 5400], dtype=np.int64)
    q = np.array([Quality.SUSPECT, Quality.SUSPECT, Quality.ESTIMATED], dtype=np.uint8)
    env.api.hub.db.intervals.write_series([ChannelSeries("a.load", 15, starts, np.full(3, 100.0), q)],
                                          layer="validated")
    client, _ = signed_in(env, "operator")
    page = client.get("/ui/quality?period=2026-10").text
    cells = _cells(_row(page, 'data-channel', "a.load"))
    assert cells[0] == "a.load" and cells[5] == "E1 S2" and cells[4] == "ok" and len(cells) == 32
    assert "M</strong> missing" in page  # the legend says it in words, not only in colour
    december = _cells(_row(client.get("/ui/quality?period=2026-12").text, "data-channel", "a.load"))
    # November's data runs to 2026-12-02T00:00Z = 19:00 EST on December 1st: 76 intervals stored, 20 missing;
    # nothing after that, so December 31st misses all 96
    assert december[1] == "M20" and december[2] == "M96" and december[-1] == "M96"
    day = client.get("/ui/quality/a.load/2026-10-05").text
    assert day.count('class="flagged"') == 3 and "suspect" in day and "estimated" in day and "EDT" in day


def test_the_heatmap_shows_a_page_of_channels_at_a_time_and_filters_by_party(ui_env_sqlite, monkeypatch):
    from kwhub.hub.ui import pages_quality

    env = ui_env_sqlite
    client, _ = signed_in(env, "operator")
    every = re.findall(r'<tr data-channel="([^"]+)"', client.get("/ui/quality?period=2026-10").text)
    assert len(every) >= 3 and "Next channels" not in client.get("/ui/quality?period=2026-10").text
    monkeypatch.setattr(pages_quality, "PER_PAGE", 2)
    pages = [client.get(f"/ui/quality?period=2026-10&page={n}") for n in (1, 2)]
    shown = [re.findall(r'<tr data-channel="([^"]+)"', r.text) for r in pages]
    assert shown[0] == every[:2] and shown[1] == every[2:4]  # the same channels, in the same order, two a page
    assert "Next channels" in pages[0].text and f"Channels 1–2 of {len(every)}" in pages[0].text
    assert "Previous channels" in pages[1].text
    assert client.get("/ui/quality?period=2026-10&page=99").status_code == 404
    mine = client.get("/ui/quality?period=2026-10&party=tenant_a").text
    assert re.findall(r'<tr data-channel="([^"]+)"', mine) == ["a.load"]
    bad = client.get("/ui/quality?period=2026-10&party=nobody")
    assert bad.status_code == 404 and "clear the filter" in bad.text


def test_owner_statements_emissions_jobs_and_audit_pages_show_the_apis_figures(ui_env_sqlite):
    env = ui_env_sqlite
    client, _ = signed_in(env, "operator")
    api = env.api.get("operator", "/api/v1/reports/owner-statements?period=2026-10").json()["statements"]
    page = client.get("/ui/owners?period=2026-10").text
    for party, st in api.items():
        assert f'data-owner="{party}"' in page and f"{float(st['net']):,.2f} {st['currency']}" in page
    assert "Owner statements 2026-10" in page
    assert "not YYYY-MM" in client.get("/ui/owners?period=2026-13").text
    assert client.post("/ui/runs/x/approve", data={}).status_code == 403  # no token: refused
    audit = client.get("/ui/audit").text
    assert "key.create" in audit
    assert "No job has run yet" in client.get("/ui/jobs").text


def test_keys_are_created_and_revoked_from_the_page_and_a_revoked_key_ends_its_sessions(ui_env_sqlite):
    env = ui_env_sqlite
    client, token = signed_in(env, "operator")
    r = client.post("/ui/keys", data={"role": "tenant", "party": "tenant_b", "name": "hall B portal",
                                      "csrf_token": token})
    assert r.status_code == 200
    new_token = _text(r.text, "new-token")
    assert new_token.startswith("kwh_")
    env.api.keys["new"] = new_token
    b_client, _ = signed_in(env, "new")
    assert b_client.get(f"/ui/invoices/{env.api.invoices['tenant_b']}").status_code == 200
    key_id = new_token.split("_")[1]
    assert client.post(f"/ui/keys/{key_id}/revoke", data={"csrf_token": token}).status_code == 422  # no reason
    r = client.post(f"/ui/keys/{key_id}/revoke", data={"reason": "portal retired", "csrf_token": token})
    assert r.status_code == 200 and "revoked" in r.text
    assert b_client.get("/ui/invoices", follow_redirects=False).status_code == 303
    bad = client.post("/ui/keys", data={"role": "tenant", "csrf_token": token})
    assert bad.status_code == 409 and "needs --party" in bad.text


def test_vendored_scripts_are_served_with_their_licences(ui_env_sqlite):
    from pathlib import Path

    import kwhub.hub.ui as ui

    env = ui_env_sqlite
    client, _ = signed_in(env, "operator")
    vendor = Path(ui.__file__).parent / "static" / "vendor"
    for lib, script in (("htmx", "htmx.min.js"), ("uplot", "uPlot.iife.min.js"), ("echarts", "echarts.min.js")):
        assert (vendor / lib / "LICENSE").stat().st_size > 500
        r = client.get(f"/ui/static/vendor/{lib}/{script}")
        assert r.status_code == 200 and len(r.content) > 10_000
    assert "/ui/static/vendor/echarts/echarts.min.js" in client.get("/ui/campus").text


def test_the_tenant_isolation_holds_on_postgresql_too(ui_env):
    client, _ = signed_in(ui_env, "tenant_b")
    assert client.get(f"/ui/invoices/{ui_env.api.invoices['tenant_a']}").status_code == 404
    page = client.get(f"/ui/invoices/{ui_env.api.invoices['tenant_b']}").text
    api = ui_env.api.get("tenant_b", f"/api/v1/invoices/{ui_env.api.invoices['tenant_b']}").json()
    assert _text(page, "invoice-total") == f"{float(api['total']):,.2f} {api['currency']}"


def test_a_later_version_of_a_run_shows_its_difference_from_the_previous_one(ui_env_sqlite):
    from tests.fixtures.settlement import set_value

    env = ui_env_sqlite
    set_value(env.api.hub.db, "a.load", 1_791_172_800, 500.0)  # 2026-10-05 00:00 EDT: 100 -> 500 kWh
    outcomes = env.api.hub.settle("2026-10", contracts=["ppa-a"], version="final")
    run_id = outcomes[0].run_id
    client, _ = signed_in(env, "operator")
    page = client.get(f"/ui/runs/{run_id}").text
    # hand-computed, the final version bills the difference: +400 kWh on October 5th, and +16 x 900 kWh on
    # October 31st 20:00-24:00 EDT (the fixture's November data, written per UTC day, restated those intervals
    # with 1,000 kWh): 14.8 MWh x 50 = 740; the peak rises from 400 to 4,000 kW: 3,600 x 10 = 36,000
    assert _text(page, "run-total") == "36,740.00 USD"
    assert "its invoice total 19,480.00 USD; this version's" in page and "36,740.00 USD (a later version" in page
    rows = re.findall(r"<tr>(.*?)</tr>", page.split('id="diff"')[1].split("</table>")[0], re.S)
    changes = [Decimal(_cells(r)[4].replace(",", "").replace(" kWh", "").lstrip("+")) for r in rows[1:]]
    assert abs(sum(changes) - Decimal("14800")) <= Decimal("0.0005") * len(changes)  # each shown to 0.001 kWh
    first = client.get(f"/ui/runs/{env.api.runs['tenant_a']}").text
    assert "This is the first version of ppa-a for 2026-10" in first


def test_empty_and_error_states_say_what_to_do(ui_env_sqlite):
    from kwhub.hub.api.keys import create_key

    env = ui_env_sqlite
    env.api.keys["ipp"] = create_key(env.api.hub.db, role="tenant", party="ipp", days=1, max_days=366,
                                     actor="test").token  # a party without contracts: nothing settled for it
    client, _ = signed_in(env, "ipp")
    assert "No settled energy yet" in client.get("/ui/campus").text
    assert "Settle a period" in client.get("/ui/campus").text
    assert "No settlement runs yet" in client.get("/ui/runs").text
    assert "No issued invoices yet" in client.get("/ui/invoices").text
    op, _ = signed_in(env, "operator")
    assert "for 2030-01; clear the filter" in op.get("/ui/invoices?period=2030-01").text
    bad = op.get("/ui/runs?status=nonsense")
    assert bad.status_code == 422 and "choose one of held, draft" in bad.text
    assert op.get("/ui/quality/a.load/2026-13-01").status_code == 422
    missing = op.get("/ui/invoices/inv:nope")
    assert missing.status_code == 404 and "Back to the campus page" in missing.text


def test_markets_page_shows_the_latest_statement_per_day_with_totals_per_charge_code(ui_env_sqlite):
    from datetime import UTC, date, datetime

    from kwhub.core.markets.models import Statement, StatementLine
    from kwhub.hub.markets import store

    env = ui_env_sqlite
    client, _ = signed_in(env, "operator")
    assert "No market data in the store" in client.get("/ui/markets?period=2026-10").text
    hour = datetime(2026, 10, 15, 5, tzinfo=UTC)

    def line(code: str, amount: str, h: int = 0) -> StatementLine:
        return StatementLine(code=code, resource="RN1", start=hour.replace(hour=5 + h), minutes=60,
                             amount=Decimal(amount))

    db = env.api.hub.db
    store.save_statement(db, Statement(iso="ERCOT", operating_day=date(2026, 10, 15), kind="initial",
                                       statement_id="S1", market="DA",
                                       lines=(line("DAESAMT", "-10.00"), line("DAESAMT", "-5.25", 1))), "a" * 64)
    store.save_statement(db, Statement(iso="ERCOT", operating_day=date(2026, 10, 15), kind="final",
                                       statement_id="S2", market="DA",
                                       lines=(line("DAESAMT", "-12.50"), line("DAESAMT", "-5.25", 1),
                                              line("DARTADMIN", "0.40"))), "b" * 64)
    page = client.get("/ui/markets?period=2026-10").text
    row = _cells(_row(page, "data-day", "2026-10-15"))
    # the later version wins: DAESAMT -12.50 - 5.25 = -17.75; with the admin fee 0.40, total -17.35
    assert row[1] == "DA" and row[2] == "final S2" and row[3] == "2"
    assert "-17.75 USD" in row[4] and "0.40 USD" in row[4] and row[5] == "-17.35 USD"
    assert "No ERCOT statement" in client.get("/ui/markets?period=2026-11").text
    tenant, _ = signed_in(env, "tenant_a")
    assert tenant.get("/ui/markets").status_code == 403
    assert 'href="/ui/markets"' not in tenant.get("/ui/campus").text


def test_the_runs_pages_rows_are_the_apis_run_list_a_page_at_a_time(ui_env_sqlite, monkeypatch):
    """hub/ui/run_rows.py reads the drafts of the shown runs only; its rows equal GET /api/v1/runs's."""
    from kwhub.hub.api.keys import verify_token
    from kwhub.hub.ui import run_rows as rr

    env = ui_env_sqlite
    for who in ("operator", "tenant_a", "tenant_b"):
        principal = verify_token(env.api.hub.db, env.api.keys[who])
        api = env.api.get(who, "/api/v1/runs").json()["items"]
        rows, waiting, total = rr.run_rows(env.api.hub, principal, period=None, status=None, page_no=1)
        assert total == len(api) and [r["id"] for r in rows] == [r["id"] for r in api][::-1], who
        assert rows[::-1] == api, who
        assert waiting == [r for r in api if r["status"] in ("held", "draft")], who
        assert bool(waiting) == (who != "tenant_b")  # the held November run of ppa-a: the operator and tenant A see it
        held = rr.run_rows(env.api.hub, principal, period="2026-11", status="held", page_no=1)[0]
        assert held == [r for r in api if r["period"] == "2026-11" and r["status"] == "held"][::-1], who
    from kwhub.hub.ui import pages_runs

    monkeypatch.setattr(rr, "PER_PAGE", 1)  # pages of one run: newest first, then older
    monkeypatch.setattr(pages_runs, "PER_PAGE", 1)
    client, _ = signed_in(env, "operator")
    first, second = client.get("/ui/runs"), client.get("/ui/runs?page=2")
    assert first.status_code == second.status_code == 200 and "Older runs" in first.text and "Newer runs" in second.text
    r99 = client.get("/ui/runs?page=99")
    assert r99.status_code == 404, r99.text[-3000:]
    assert client.get("/ui/runs?period=26-1").status_code == 422
