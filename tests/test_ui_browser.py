"""The dashboard in headless Chromium (Selenium, the system's chromium and chromedriver).

A real uvicorn server on a free local port serves the test campus (tests.fixtures.ui);
the browser signs in with an API key, opens every page, approves the held run by keyboard
and mouse, retries a dead letter, and saves a screenshot of each page to the artefacts
folder ``.artifacts/screenshots/`` (or ``$KWHUB_SCREENSHOTS``; the committed pictures in
``docs/screenshots/`` are refreshed with ``KWHUB_SCREENSHOTS=docs/screenshots``). Without chromium the tests skip, or
fail when ``KWHUB_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.services import require_services

CHROMIUM = os.environ.get("KWHUB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("KWHUB_CHROMEDRIVER", "/usr/bin/chromedriver")
SHOTS = Path(os.environ.get("KWHUB_SCREENSHOTS", Path(__file__).resolve().parents[1] / ".artifacts" / "screenshots"))


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).exists() or shutil.which(p))]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    if missing:
        msg = f"browser tests need {', '.join(missing)} (apt-get install -y chromium chromium-driver)"
        if require_services():
            pytest.fail(msg + " (KWHUB_REQUIRE_SERVICES=1 forbids skipping)")
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(ui_env_sqlite: Any) -> Iterator[tuple[str, Any]]:
    """(base URL, the UiEnv) with uvicorn serving the app in a thread; stopped after the test."""
    _need_browser()
    with _serving(ui_env_sqlite.api.app) as base:
        yield base, ui_env_sqlite


@contextmanager
def _serving(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on a free local port: its base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("uvicorn did not start within 15 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Any]:
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _sign_in(driver: Any, base: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/ui/campus")
    assert "/ui/login" in driver.current_url
    field = driver.find_element(By.ID, "key")
    assert driver.switch_to.active_element == field  # focus starts in the key field
    field.send_keys(token)
    field.submit()
    _wait(driver, lambda d: "/ui/campus" in d.current_url)


def _wait(driver: Any, cond: Any, timeout: float = 15) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(cond)


def _shot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    from selenium.webdriver.common.by import By

    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1280, min(max(int(height) + 40, 700), 2400))
    driver.find_element(By.TAG_NAME, "body")
    assert driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(1280, 1000)


def _flag_some_intervals(env: Any) -> None:
    """A few suspect and estimated intervals in October, so the heatmap screenshot shows them."""
    import numpy as np

    from kwhub.core.intervals import ChannelSeries
    from kwhub.core.quality import Quality

    day5 = 1_791_172_800  # 2026-10-05 00:00 EDT
    for ch, offset, n, q in (("a.load", 0, 3, Quality.SUSPECT), ("b.load", 7 * 86400, 8, Quality.ESTIMATED),
                             ("gt1.net", 12 * 86400, 2, Quality.SUSPECT)):
        starts = day5 + offset + 3600 + 900 * np.arange(n, dtype=np.int64)
        env.api.hub.db.intervals.write_series([ChannelSeries(ch, 15, starts, np.full(n, 100.0),
                                                             np.full(n, q, np.uint8))], layer="validated")


def test_operator_opens_every_page_approves_a_held_run_and_retries_a_dead_letter(live, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, env = live
    _sign_in(browser, base, env.api.keys["operator"])
    # campus now: the Sankey is drawn by the vendored ECharts (an SVG inside #sankey)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#sankey svg"))
    assert "200.0 kW" in browser.find_element(By.ID, "tenants").text
    assert browser.execute_script("return typeof htmx") == "object"
    # the page asks htmx for the flow fragment itself (what the timer does), under the page's CSP
    browser.execute_script("htmx.ajax('GET', '/ui/campus/flow', '#flow')")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#sankey svg") and "200.0 kW" in d.find_element(By.ID, "flow").text)
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors  # no CSP violation or script error
    _shot(browser, "campus")
    _flag_some_intervals(env)
    pages = {"runs": "Waiting for a decision", "invoices": "Number", "deliveries": "Retry row",
             "quality": "VEE events", "owners": "Owner statements", "emissions": "Emissions", "markets": "Markets",
             "jobs": "Configured jobs", "audit": "key.create", "keys": "Create a key"}
    for name, text in pages.items():
        browser.get(f"{base}/ui/{name}" + ("?period=2026-10" if name == "quality" else ""))
        assert text in browser.find_element(By.TAG_NAME, "body").text, name
        assert not browser.find_elements(By.CSS_SELECTOR, ".notice.error"), name
        _shot(browser, name)
    inv = env.api.invoices["tenant_a"]
    browser.get(f"{base}/ui/invoices/{inv}")
    api_total = env.api.get("operator", f"/api/v1/invoices/{inv}").json()["total"]
    assert browser.find_element(By.ID, "invoice-total").text == f"{float(api_total):,.2f} USD"
    _shot(browser, "invoice")
    browser.find_element(By.LINK_TEXT, "explain line 1").click()
    assert "Arithmetic" in browser.find_element(By.TAG_NAME, "main").text
    _shot(browser, "invoice-line")
    # down to the intervals: the line's a.load day of 5 October (three flagged intervals)
    browser.find_element(By.CSS_SELECTOR, 'table.line-channel[data-channel="a.load"] tr[data-day="2026-10-05"] a').click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#series canvas"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#intervals tr.flagged")) == 3
    assert "Back to line 1" in browser.find_element(By.TAG_NAME, "main").text
    _shot(browser, "invoice-line-intervals")
    browser.get(f"{base}/ui/quality/a.load/2026-10-05")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#series canvas"))  # drawn by the vendored uPlot
    _shot(browser, "quality-drilldown")
    # approve the held run: keyboard into the reason field, then the button
    browser.get(f"{base}/ui/runs")
    card = browser.find_element(By.CSS_SELECTOR, f'section.held[data-run="{env.held_run}"]')
    assert "movement" in card.text
    reason = card.find_element(By.NAME, "reason")
    reason.send_keys("hall A doubled its racks")
    reason.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Approve and issue"
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    _wait(browser, lambda d: "approved; invoice" in d.find_element(By.CSS_SELECTOR, ".flash").text)
    assert env.api.get("operator", f"/api/v1/runs/{env.held_run}").json()["status"] == "issued"
    _shot(browser, "runs-after-approve")
    browser.get(f"{base}/ui/runs/{env.held_run}")
    _shot(browser, "run")
    # retry the dead letter
    browser.get(f"{base}/ui/deliveries")
    browser.find_element(By.XPATH, f'//button[text()="Retry row {env.dead_row}"]').click()
    _wait(browser, lambda d: "pending again" in d.find_element(By.CSS_SELECTOR, ".flash").text)
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-row="{env.dead_row}"]')
    assert "pending" in row.text and "Retry" not in row.text


def test_a_tenant_in_the_browser_gets_404_for_another_tenants_invoice_and_works_at_tablet_width(live, browser):
    from selenium.webdriver.common.by import By

    base, env = live
    _sign_in(browser, base, env.api.keys["tenant_a"])
    browser.get(f"{base}/ui/invoices/{env.api.invoices['tenant_b']}")
    assert "404 — Not found" in browser.find_element(By.TAG_NAME, "main").text
    browser.get(f"{base}/ui/invoices")
    assert env.api.invoices["tenant_b"] not in browser.page_source
    browser.set_window_size(820, 1180)  # a tablet in portrait
    browser.get(f"{base}/ui/campus")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 820  # no sideways scrolling of the page itself (wide tables scroll in their own box)
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "tenant-campus-tablet.png"))
    # the skip link is the first stop of the keyboard
    from selenium.webdriver.common.keys import Keys

    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"


def test_a_market_day_in_the_browser(sqlite_db, tmp_path, market_sim, browser):
    """Bids, awards and the variance per charge code of a local-ERCOT day (tests.fixtures.ui_markets)."""
    from selenium.webdriver.common.by import By

    from tests.fixtures.ui_markets import DAY, market_day

    _hub, app, keys, sid = market_day(sqlite_db, tmp_path, market_sim)
    with _serving(app) as base:
        _sign_in(browser, base, keys["auditor"])
        browser.get(f"{base}/ui/markets?period=2026-10")
        browser.find_element(By.LINK_TEXT, str(DAY)).click()
        main = browser.find_element(By.TAG_NAME, "main").text
        assert "accepted" in main and "1,200.0 MWh" in main and "-51,000.00 USD" in main
        row = browser.find_element(By.CSS_SELECTOR, 'section[data-statement="QKWHUB-RTM-20261020-INITIAL"] '
                                                    'tr[data-code="RTEIAMT"]')
        assert "-20.40 USD" in row.text and "no: 1 line(s) outside" in row.text  # words, not only colour
        assert not [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
        _shot(browser, "market-day")


def test_without_chromium_the_browser_tests_fail_when_services_are_required_and_skip_otherwise(monkeypatch):
    import tests.test_ui_browser as me

    monkeypatch.setattr(me, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("KWHUB_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="forbids skipping"):
        me._need_browser()
    monkeypatch.setenv("KWHUB_REQUIRE_SERVICES", "0")
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium chromium-driver"):
        me._need_browser()
