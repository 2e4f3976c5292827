"""The campus figures are computed when a run is issued (and at start), not by the page request.

Test campus (tests.fixtures.ui): October issued for both tenants, November issued for tenant
B only (tenant A's November draft is held). Tenant B draws 50 kWh per 15 minutes (200 kW),
tenant A 100 kWh (400 kW) in October and 1,000 kWh (4,000 kW) in November.
"""

from __future__ import annotations

import re
import threading
import time

from tests.fixtures.ui import signed_in


def _party_cells(html: str, party: str) -> list[str]:
    m = re.search(rf'<tr data-party="{party}">(.*?)</tr>', html, re.S)
    assert m, f"no row for {party}"
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", m.group(1), re.S)]


def _wait(cond, seconds: float = 60.0) -> None:  # noqa: ANN001
    end = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < end, "the warmer did not finish in time"
        time.sleep(0.05)


def test_figures_are_computed_by_the_warmer_when_a_run_is_issued_not_by_the_page(ui_env_sqlite, monkeypatch):
    from kwhub.hub.ui import flow

    env = ui_env_sqlite
    app = env.api.app
    warmer = app.state.ui_flow_warmer
    computed: list[tuple[str, str]] = []  # (period, thread name)
    real = flow.compute_figures

    def counting(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        figs = real(*args, **kw)
        computed.append((figs.period, threading.current_thread().name))
        return figs

    monkeypatch.setattr(flow, "compute_figures", counting)
    warmer.start()  # as `kwhub serve` does: the latest issued period is computed before any page
    try:
        _wait(lambda: warmer.latest_period == "2026-11" and not warmer._dirty)
        assert computed == [("2026-11", "kwhub-ui-warmer")]
        client, token = signed_in(env, "operator")
        frag = client.get("/ui/campus/flow", headers={"HX-Request": "true"}).text
        assert _party_cells(frag, "tenant_b")[1:3] == ["200.0 kW", "144.200 MWh"]  # 50 x 2,884 = 144,200 kWh
        assert len(computed) == 1  # the page only filtered the figures

        # issuing tenant A's November run (approve) wakes the warmer, which recomputes in its thread
        client.post(f"/ui/runs/{env.held_run}/approve", data={"reason": "ok", "csrf_token": token})
        _wait(lambda: len(computed) == 2 and not warmer._dirty)
        assert computed[1] == ("2026-11", "kwhub-ui-warmer")
        frag = client.get("/ui/campus/flow", headers={"HX-Request": "true"}).text
        assert _party_cells(frag, "tenant_a")[1:3] == ["4,000.0 kW", "2,884.000 MWh"]
        assert len(computed) == 2

        # a tenant is shown its own part of the same figures, nothing of the other tenant
        tenant, _ = signed_in(env, "tenant_a")
        mine = tenant.get("/ui/campus/flow", headers={"HX-Request": "true"}).text
        assert _party_cells(mine, "tenant_a")[1] == "4,000.0 kW" and 'data-party="tenant_b"' not in mine
        assert "Hall B" not in mine and len(computed) == 2
    finally:
        warmer.stop()


def test_without_the_thread_the_next_page_computes_and_a_tenant_without_runs_in_it_sees_its_own_latest(ui_env_sqlite):
    env = ui_env_sqlite
    # tenant A's November run is held: its latest issued period is October (100 kWh per 15 min = 400 kW,
    # 2,976 intervals = 297.600 MWh)
    tenant, _ = signed_in(env, "tenant_a")
    page = tenant.get("/ui/campus").text
    assert "Period <strong>2026-10</strong>" in page
    assert _party_cells(page, "tenant_a")[1:3] == ["400.0 kW", "297.600 MWh"]
    assert 'data-party="tenant_b"' not in page
    warmer = env.api.app.state.ui_flow_warmer
    assert not warmer.running and sorted(warmer.figures) == ["2026-10", "2026-11"]


def test_a_serve_worker_starts_the_warmer_which_computes_the_latest_period_before_any_page(api_env_sqlite, monkeypatch):
    from kwhub.hub.api.serve import ENV_CONFIG, worker_app

    env = api_env_sqlite  # October issued for both tenants
    monkeypatch.setenv(ENV_CONFIG, str(env.hub.config.source))
    app = worker_app()
    warmer = app.state.ui_flow_warmer
    try:
        assert warmer.running
        _wait(lambda: warmer.latest_period == "2026-10" and not warmer._dirty)
        figs = warmer.figures["2026-10"]
        # tenant A 100 kWh + tenant B 50 kWh per 15 minutes over 2,976 intervals = 446,400 kWh
        assert sum(r.kwh for r in figs.rows) == 446_400
    finally:
        warmer.stop()
        app.state.hub.close()


def test_while_the_warmer_recomputes_the_fragment_shows_the_previous_figures_and_says_so(ui_env_sqlite, monkeypatch):
    """After an issue the fragment answers at once from the previous figures, marked "Updating", and
    shows the new figures without the mark once the warmer is done."""
    from kwhub.hub.ui import flow

    env = ui_env_sqlite
    warmer = env.api.app.state.ui_flow_warmer
    release = threading.Event()
    real = flow.compute_figures

    def slow(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        figs = real(*args, **kw)
        if len(figs.run_ids) == 2:  # the recomputation after the approval (both November runs) waits for the test
            release.wait(30)
        return figs

    monkeypatch.setattr(flow, "compute_figures", slow)
    warmer.start()
    try:
        _wait(lambda: warmer.latest_period == "2026-11" and not warmer.updating)
        client, token = signed_in(env, "operator")
        assert "Updating" not in client.get("/ui/campus/flow").text
        client.post(f"/ui/runs/{env.held_run}/approve", data={"reason": "ok", "csrf_token": token})
        _wait(lambda: warmer._recomputing)
        t0 = time.monotonic()
        frag = client.get("/ui/campus/flow").text
        assert time.monotonic() - t0 < 5  # answered while the recomputation is still blocked
        assert 'id="flow-updating"' in frag and "a run was issued since these figures" in frag
        assert "tenant_a" not in re.findall(r'data-party="([^"]+)"', frag)  # the previous figures: B only
        release.set()
        _wait(lambda: not warmer.updating)
        frag = client.get("/ui/campus/flow").text
        assert 'id="flow-updating"' not in frag
        assert _party_cells(frag, "tenant_a")[1:3] == ["4,000.0 kW", "2,884.000 MWh"]
    finally:
        release.set()
        warmer.stop()
