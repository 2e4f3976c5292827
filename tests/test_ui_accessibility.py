"""The accessibility items of issue 17, checked on every page in headless Chromium.

On each page (an operator's, a tenant's, the sign-in page, error pages, and every page of a hub
with nothing settled yet) the browser checks:

* keyboard: Tab reaches every visible control in document order (no positive ``tabindex``), each
  shows a focus ring when reached, the first stop is "Skip to content"; every form control has a
  label and every button and link a name;
* no colour-only meaning: badges, heatmap cells and any shaded cell carry their meaning as text;
  charts have a text alternative (an ``aria-label`` and the same figures in a table);
* numbers right-aligned with their unit: a cell that holds a number is right-aligned, and a
  measured (decimal) number carries its unit in the cell;
* time zones: every time shown (``YYYY-MM-DD HH:MM``) carries its zone's abbreviation, and the
  footer names the hub's zone;
* empty and error states say what to do (each names an action or where to go).

Screenshots of the empty pages and the error page go to the artefacts folder with the others.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests import test_ui_browser as tb
from tests.test_ui_browser import _need_browser, _serving, _shot, _sign_in

browser = tb.browser  # the browser tests' fixtures: headless Chromium, and the test campus served by uvicorn
live = tb.live

AUDIT_JS = r"""
const problems = [];
const shown = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length)
                    && getComputedStyle(el).visibility !== 'hidden';
const name = el => el.outerHTML.slice(0, 90);
// labels and names
for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
  const lab = (el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`)) || el.closest('label');
  if (!lab && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby')) problems.push('no label: ' + name(el));
}
for (const el of document.querySelectorAll('button, a[href]')) {
  if (!(el.textContent.trim() || el.getAttribute('aria-label'))) problems.push('no name: ' + name(el));
}
for (const el of document.querySelectorAll('[tabindex]')) {
  if (parseInt(el.getAttribute('tabindex'), 10) > 0) problems.push('positive tabindex: ' + name(el));
}
// colour-only meaning
const plain = new Set(['rgba(0, 0, 0, 0)', 'rgb(255, 255, 255)', 'rgb(246, 248, 250)', 'transparent']);
for (const el of document.querySelectorAll('main td, main th, main .badge, main span, main li')) {
  if (!shown(el) || el.textContent.trim() || el.getAttribute('aria-label') || el.querySelector('input, button, select, textarea, img, svg, canvas')) continue;
  const bg = getComputedStyle(el).backgroundColor;
  if (el.classList.contains('badge') || !plain.has(bg)) problems.push('meaning by colour only: ' + name(el));
}
for (const el of document.querySelectorAll('main .chart, main canvas, main svg')) {
  const chart = el.closest('.chart') || el.closest('[role=img]') || el;
  if (!chart.getAttribute('aria-label')) problems.push('chart without a text alternative: ' + name(chart));
}
if (document.querySelector('main .chart') && !document.querySelector('main table')) problems.push('chart without a table of its figures');
// numbers: right-aligned, decimals with their unit
const number = /^[-−+]?\d[\d,]*(\.\d+)?(\s?\S.*)?$/;
const date = /^\d{4}-\d{2}(-\d{2})?/;
for (const td of document.querySelectorAll('main tbody td, main tbody th[scope=row]')) {
  if (!shown(td) || td.querySelector('details, code')) continue;  // a disclosure or an identifier, not a figure
  const t = td.innerText.trim().replace(/\s+/g, ' ');
  if (!t || date.test(t) || !number.test(t)) continue;
  const m = t.match(/^[-−+]?\d[\d,]*(\.\d+)?(.*)$/);
  if (!/^(\s[A-Za-z%][\w%/\-]*|\s?%|\s(t|kg) CO2e(\/MWh)?)?$/.test(m[2])) continue;  // text that starts with a digit, not a quantity
  const align = getComputedStyle(td).textAlign;
  if (align !== 'right' && align !== 'end') problems.push(`number not right-aligned: "${t}" in ${name(td)}`);
  if (m[1] && !m[2].trim()) problems.push(`decimal number without its unit: "${t}" in ${name(td)}`);
}
// times with their zone: what follows a time (in its text or the next text) is a zone abbreviation or an offset
const texts = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  if (!n.parentElement.closest('script, style')) texts.push(n.textContent);
}
const stamp = /\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?/g;
const zone = /^\s?([A-Z]{2,5}(?![A-Za-z])|[+-]\d{2}(:?\d{2})?|Z(?![A-Za-z]))/;
texts.forEach((t, i) => {
  for (const m of t.matchAll(stamp)) {
    let rest = t.slice(m.index + m[0].length);
    for (let j = i + 1; !rest.trim() && j < texts.length && j < i + 4; j++) rest += texts[j];
    if (!zone.test(rest)) problems.push('time without its zone: "' + t.trim().slice(0, 80) + '"');
  }
});
const foot = document.querySelector('footer');
if (!foot || !/Times in \S+\/\S+|Times in UTC/.test(foot.textContent)) problems.push('the footer does not name the time zone');
// empty and error states say what to do
const todo = /\b(settle|run|configure|add|ingest|poll|pick|clear|wait|sign in|ask|check|open|create|reload|approve|submit|fetch|start|go back|back to|choose|write|use)\b/i;
for (const el of document.querySelectorAll('.notice.empty, .notice.error')) {
  if (!todo.test(el.textContent)) problems.push('a notice that does not say what to do: "' + el.textContent.trim().slice(0, 120) + '"');
}
return problems;
"""

FOCUS_JS = r"""
const sel = 'a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select:not([disabled]), ' +
            'textarea:not([disabled]), summary, [tabindex]:not([tabindex="-1"])';
const shown = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length)
                    && getComputedStyle(el).visibility !== 'hidden' && !el.closest('details:not([open]) > :not(summary)');
const all = [...document.querySelectorAll(sel)].filter(el => shown(el) || el.classList.contains('skip'));
all.forEach((el, i) => el.dataset.a11yIndex = i);
window.__focus = [];
document.addEventListener('focusin', e => {
  const cs = getComputedStyle(e.target);
  const ring = (cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) >= 1) || cs.boxShadow !== 'none';
  window.__focus.push([e.target.dataset.a11yIndex ?? null, ring, e.target.outerHTML.slice(0, 90)]);
});
document.activeElement && document.activeElement.blur();
document.body.setAttribute('tabindex', '-1');  // start the Tab walk at the top of the page
document.body.focus();
document.body.removeAttribute('tabindex');
window.__focus = [];
window.scrollTo(0, 0);
return all.length;
"""


def audit(driver: Any, where: str) -> list[str]:
    """The accessibility problems of the page open in ``driver`` (empty: none)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    problems = [f"{where}: {p}" for p in driver.execute_script(AUDIT_JS)]
    n = driver.execute_script(FOCUS_JS)
    if n > 400:  # a very long page: check the first 400 stops
        n = 400
    chain = ActionChains(driver)
    for _ in range(n):
        chain.send_keys(Keys.TAB)
    chain.perform()
    seen = driver.execute_script("return window.__focus")
    order = [int(i) for i, _, _ in seen if i is not None]
    if not seen or "Skip to content" not in seen[0][2]:
        problems.append(f"{where}: the first Tab stop is not 'Skip to content' ({seen[:1]})")
    if order[:n] != list(range(min(n, len(order)))) or len(order) < n:
        missing = sorted(set(range(n)) - set(order))[:3]
        problems.append(f"{where}: Tab does not reach every control in order ({len(order)} of {n} stops; "
                        f"first out of order or missed: {missing})")
    problems += [f"{where}: no focus ring on {html}" for _, ring, html in seen if not ring]
    return problems


def _pages_of(env: Any) -> list[str]:
    inv = env.api.invoices["tenant_a"]
    return ["/ui/campus", "/ui/runs", f"/ui/runs/{env.held_run}", "/ui/invoices", f"/ui/invoices/{inv}",
            f"/ui/invoices/{inv}/lines/1", f"/ui/invoices/{inv}/lines/1/intervals/a.load/2026-10-05",
            "/ui/deliveries", "/ui/quality?period=2026-10", "/ui/quality/a.load/2026-10-05", "/ui/owners?period=2026-10",
            "/ui/emissions?period=2026-10", "/ui/markets", "/ui/jobs", "/ui/audit", "/ui/keys",
            "/ui/invoices/INV-NOT-THERE", "/ui/quality?period=1999-13"]


def test_every_page_passes_the_accessibility_checks_for_an_operator_and_a_tenant(live, browser):
    base, env = live
    browser.get(base + "/ui/login")
    problems = audit(browser, "/ui/login")
    _sign_in(browser, base, env.api.keys["operator"])
    for path in _pages_of(env):
        browser.get(base + path)
        problems += audit(browser, "operator " + path)
    browser.get(base + "/ui/invoices/INV-NOT-THERE")
    _shot(browser, "error-404")
    browser.delete_all_cookies()
    _sign_in(browser, base, env.api.keys["tenant_a"])
    for path in ["/ui/campus", "/ui/runs", "/ui/invoices", f"/ui/invoices/{env.api.invoices['tenant_a']}",
                 f"/ui/invoices/{env.api.invoices['tenant_b']}", "/ui/quality?period=2026-10", "/ui/emissions",
                 "/ui/keys", "/ui/deliveries"]:
        browser.get(base + path)
        problems += audit(browser, "tenant " + path)
    print("\n".join(problems))
    assert problems == [], "\n".join(problems)


@pytest.fixture
def empty_hub(tmp_path: Any) -> Any:
    """A hub with its campus configured and nothing ingested or settled: (app, keys)."""
    import tomli_w

    from kwhub.hub.api.app import create_app
    from kwhub.hub.api.serve import sync_reference
    from kwhub.hub.app import Hub
    from kwhub.hub.config import load_config
    from kwhub.hub.store import Database
    from tests.fixtures.api import campus_toml, make_keys

    db = Database.open(f"sqlite:///{tmp_path / 'empty.db'}")
    path = tmp_path / "kwhub.toml"
    path.write_bytes(tomli_w.dumps(campus_toml(db.url)).encode())
    hub = Hub.from_config(load_config(path), database=db)
    sync_reference(hub)
    yield create_app(hub, access_log=False), make_keys(db)
    db.close()


def test_the_pages_of_a_hub_with_nothing_settled_say_what_to_do(empty_hub, browser):
    from selenium.webdriver.common.by import By

    _need_browser()
    app, keys = empty_hub
    problems: list[str] = []
    with _serving(app) as base:
        _sign_in(browser, base, keys["operator"])
        for path in ["/ui/campus", "/ui/runs", "/ui/invoices", "/ui/deliveries", "/ui/quality", "/ui/owners",
                     "/ui/emissions", "/ui/markets", "/ui/jobs", "/ui/audit"]:
            browser.get(base + path)
            main = browser.find_element(By.TAG_NAME, "main")
            empties = main.find_elements(By.CSS_SELECTOR, ".notice.empty")
            if not empties and path not in ("/ui/quality", "/ui/audit"):  # channels and key.create rows exist
                problems.append(f"{path}: no empty-state notice on an empty hub")
            problems += audit(browser, "empty " + path)
            if path in ("/ui/campus", "/ui/runs", "/ui/invoices"):
                _shot(browser, "empty-" + path.rsplit("/", 1)[-1])
    print("\n".join(problems))
    assert problems == [], "\n".join(problems)


def test_the_audit_finds_what_it_looks_for(browser, tmp_path):
    """The checks themselves: a page with each fault is reported for each."""
    _need_browser()
    page = tmp_path / "bad.html"
    page.write_text("""<!doctype html><html><body><a class="skip" href="#m">Skip to content</a>
<main id="m"><input name="q"><button></button><a href="/x" tabindex="3">x</a>
<table><tbody><tr><td>12.5</td><td style="text-align:left">1,200 kWh</td>
<td style="background:#e05a47"></td></tr></tbody></table>
<p>Made 2026-10-05 14:00 by nobody.</p><div class="notice empty"><p>Nothing here.</p></div>
<div class="chart"><svg></svg></div></main><footer>no zone</footer></body></html>""")
    browser.get(page.as_uri())
    found = "\n".join(audit(browser, "bad"))
    for what in ("no label", "no name", "positive tabindex", "meaning by colour only", "chart without a text",
                 "decimal number without its unit", "number not right-aligned", "time without its zone",
                 "footer does not name", "does not say what to do", "Tab does not reach every control in order"):
        assert re.search(re.escape(what), found), (what, found)
