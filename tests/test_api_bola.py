"""Tenant isolation (OWASP API1): a tenant key never reaches another party's objects or rows.

For every object route tenant A's key on tenant B's object answers 404 (the same as an id
that does not exist), and every list is checked row by row. On PostgreSQL the same holds
with the database's row-level security alone (``test_rls_app_role.py``).
"""

from __future__ import annotations

from sqlalchemy import insert

OCT = {"start": "2026-10-01T00:00:00-04:00", "end": "2026-11-01T00:00:00-04:00"}


def _object_paths(env, owner: str) -> list[str]:  # noqa: ANN001
    inv, run = env.invoices[owner], env.runs[owner]
    ch = "a.load" if owner == "tenant_a" else "b.load"
    return [f"/api/v1/invoices/{inv}", f"/api/v1/invoices/{inv}/documents/json", f"/api/v1/invoices/{inv}/explain",
            f"/api/v1/invoices/{inv}/explain?line=1", f"/api/v1/runs/{run}", f"/api/v1/channels/{ch}",
            f"/api/v1/channels/{ch}/readings?start={OCT['start'].replace('+', '%2B')}&end={OCT['end']}"]


def test_every_object_route_answers_404_for_another_tenants_object(api_env):
    for me, other in (("tenant_a", "tenant_b"), ("tenant_b", "tenant_a")):
        for path in _object_paths(api_env, other):
            r = api_env.get(me, path)
            assert r.status_code == 404, (me, path, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert api_env.invoices[other] not in r.json()["detail"] or "no invoice" in r.json()["detail"]
        for path in _object_paths(api_env, me):  # its own objects are there
            assert api_env.get(me, path).status_code == 200, path
    # a missing id and a foreign id answer the same
    missing = api_env.get("tenant_a", "/api/v1/invoices/inv:nope")
    foreign = api_env.get("tenant_a", f"/api/v1/invoices/{api_env.invoices['tenant_b']}")
    assert missing.status_code == foreign.status_code == 404
    assert missing.json()["title"] == foreign.json()["title"]


def test_writes_on_another_tenants_objects_are_refused(api_env):
    run_b = api_env.runs["tenant_b"]
    for path in (f"/api/v1/runs/{run_b}/approve", f"/api/v1/runs/{run_b}/reject"):
        assert api_env.post("tenant_a", path, json={"reason": "x"}).status_code == 403
    assert api_env.post("tenant_a", "/api/v1/outbox/1/retry").status_code == 403
    assert api_env.post("tenant_a", "/api/v1/keys", json={"role": "operator"}).status_code == 403


def test_lists_hold_only_the_tenants_rows(api_env):
    from kwhub.hub.store.tables import utcnow, vee_event_table

    with api_env.hub.db.write_transaction() as conn:
        for ch in ("a.load", "b.load", "gt1.net"):
            conn.execute(insert(vee_event_table).values(run_label="t", channel_id=ch, day=utcnow().date(),
                                                        rule_id="gap", action="flagged", count=1, detail={},
                                                        created_at=utcnow()))
    parties = {"tenant_a": {"ppa-a"}, "tenant_b": {"ppa-b"}}
    for me, contracts in parties.items():
        ch = "a.load" if me == "tenant_a" else "b.load"
        invoices = api_env.get(me, "/api/v1/invoices").json()["items"]
        assert invoices and all(i["buyer"] == me for i in invoices)
        runs = api_env.get(me, "/api/v1/runs").json()["items"]
        assert runs and all(r["contract_id"] in contracts for r in runs)
        channels = api_env.get(me, "/api/v1/channels").json()["items"]
        assert [c["id"] for c in channels] == [ch]
        events = api_env.get(me, "/api/v1/vee/events").json()["items"]
        assert [e["channel_id"] for e in events] == [ch]
        campus = api_env.get(me, "/api/v1/campus").json()
        assert [p["id"] for p in campus["parties"]] == [me]
        assert {c["id"] for c in campus["contracts"]} == contracts
        assert [c["id"] for c in campus["channels"]] == [ch]
        emissions = api_env.get(me, "/api/v1/reports/emissions?period=2026-10").json()
        assert {r["party"] for r in emissions["parties"]} <= {me}
        assert api_env.get(me, "/api/v1/reports/owner-statements?period=2026-10").json()["statements"] == {}
        assert api_env.get(me, "/api/v1/reports/owner-statements?period=2026-10&owner=op").status_code == 404
    # an ERP key limited to tenant_a sees tenant_a's deliveries only; the operator sees both
    rows = api_env.get("erp_a", "/api/v1/outbox").json()["items"]
    everything = api_env.get("operator", "/api/v1/outbox").json()["items"]
    assert rows and {r["invoice_id"] for r in rows} == {api_env.invoices["tenant_a"]}
    assert {r["invoice_id"] for r in everything} == set(api_env.invoices.values())


def test_keys_without_or_with_bad_credentials_get_401_and_missing_scopes_403(api_env):
    c = api_env.client
    assert c.get("/api/v1/invoices").status_code == 401
    assert c.get("/api/v1/invoices", headers={"Authorization": "Bearer kwh_000000000000_nope"}).status_code == 401
    assert c.get("/api/v1/invoices", headers={"Authorization": "Basic dXNlcjpwdw=="}).status_code == 401
    r = api_env.get("tenant_a", "/api/v1/audit")
    assert r.status_code == 403 and "audit:read" in r.json()["detail"]
    assert api_env.get("auditor", "/api/v1/audit").status_code == 200
    assert api_env.post("auditor", f"/api/v1/runs/{api_env.runs['tenant_a']}/reject", json={"reason": "x"}).status_code == 403


def test_every_api_route_declares_401_403_and_object_routes_404(api_env):
    spec = api_env.app.openapi()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            if path.startswith("/api/v1"):
                assert {"401", "403"} <= codes, (method, path)
                if "{" in path:
                    assert "404" in codes, (method, path)
