"""The Markets pages on a day run through the local ERCOT: bids and acceptance, awards per
hour and the variance per charge code of every statement version, hand-computed with Decimal.

Set-up (America/Chicago, 20 Oct 2026, an ordinary 24-hour day): one resource RN1 offers 50 MW
at $25.00 every hour; the day-ahead price is $30 + hour ending (HE01 $31 ... HE24 $54), so
every hour clears 50 MWh; the real-time price is $40.00 in every quarter. The campus meter
reads 12.5 MWh per quarter (exactly a quarter of the award) except the first, 13.0 MWh.
The ISO's meter reads 0.010 MWh more in quarter 40 (HE11.1).
"""

from __future__ import annotations

import re

from tests.fixtures.ui import csrf_of
from tests.fixtures.ui_markets import DAY, market_day


def _cells(html: str) -> list[str]:
    return [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]


def _row(html: str, attr: str, value: str) -> list[str]:
    m = re.search(rf'<tr {attr}="{re.escape(value)}">(.*?)</tr>', html, re.S)
    assert m, f"no row {attr}={value}"
    return _cells(m.group(1))


def _section(html: str, statement: str) -> str:
    m = re.search(rf'<section class="card" data-statement="{re.escape(statement)}">(.*?)</section>', html, re.S)
    assert m, f"no statement {statement}"
    return m.group(1)


def test_a_market_day_shows_bids_awards_and_the_variance_per_charge_code(sqlite_db, tmp_path, market_sim):
    from fastapi.testclient import TestClient

    from kwhub.hub.markets import store

    db = sqlite_db
    _hub, app, keys, sid = market_day(db, tmp_path, market_sim)
    client = TestClient(app)
    form = client.get("/ui/login")
    assert client.post("/ui/login", data={"key": keys["auditor"], "csrf_token": csrf_of(form.text)},
                       follow_redirects=False).status_code == 303

    period = client.get("/ui/markets?period=2026-10").text
    assert f'href="/ui/markets/ERCOT/{DAY}"' in period
    # the period page: the ISO's totals of the day's latest versions, -51,000.00 and -20.40 USD
    assert re.search(r'<td class="num">-51,000.00 USD</td></tr>', period)
    assert re.search(r'<td class="num">-20.40 USD</td></tr>', period)
    page = client.get(f"/ui/markets/ERCOT/{DAY}")
    assert page.status_code == 200, page.text[-800:]
    html = page.text
    # bids and acceptance
    sub = _row(html, "data-submission", sid)
    assert sub[0] == "DA" and sub[2] == "accepted" and sub[3].startswith("RN1 accepted")
    # awards: 24 hours of 50 MWh = 1,200 MWh
    awards = _row(html, "data-award", "DA-RN1")
    assert awards[2:26] == ["50.0 MWh"] * 24 and awards[26] == "1,200.0 MWh"
    assert ">HE01<" in html and ">HE24<" in html
    # DAESAMT = -50 MWh x sum(30 + HE, HE 1..24) = -50 x (720 + 300) = -51,000.00, shadow = ISO
    dam = _section(html, "QKWHUB-DAM-20261020-INITIAL")
    assert _row(dam, "data-code", "DAESAMT")[2:5] == ["-51,000.00 USD", "-51,000.00 USD", "0.00 USD"]
    assert "No line is outside the tolerance" in dam
    # RTEIAMT: kwhub -40.00 x (13.0 - 12.5) = -20.00; the ISO adds -40.00 x 0.010 = -0.40 in HE11.1
    # -> ISO -20.40, variance +0.40, one line outside the tolerance, cause quantity
    rtm = _section(html, "QKWHUB-RTM-20261020-INITIAL")
    assert _row(rtm, "data-code", "RTEIAMT")[2:6] == ["-20.00 USD", "-20.40 USD", "0.40 USD",
                                                      "no: 1 line(s) outside"]
    # the version's total over its codes: the RTM statement carries only RTEIAMT here
    assert _row(rtm, "data-code", "total")[1:4] == ["-20.00 USD", "-20.40 USD", "0.40 USD"]
    assert _row(dam, "data-code", "total")[1:4] == ["-51,000.00 USD", "-51,000.00 USD", "0.00 USD"]
    outside = re.search(r'<table class="outside">.*?<tbody>(.*?)</tbody>', rtm, re.S)
    assert outside, "no table of lines outside the tolerance"
    assert _cells(outside.group(1))[:6] == ["RTEIAMT", "RN1", "2026-10-20 HE11.1", "0.00 USD", "-0.40 USD", "0.40 USD"]
    assert _cells(outside.group(1))[6].startswith("quantity")
    # the page read the API's route: the same figures as GET /api/v1/markets/ERCOT/variance
    api = client.get(f"/api/v1/markets/ERCOT/variance?day={DAY}", headers={"Authorization": f"Bearer {keys['auditor']}"})
    codes = {c["code"]: c for st in api.json()["statements"] for c in st["codes"]}
    assert codes["RTEIAMT"]["iso"] == "-20.40" and codes["DAESAMT"]["shadow"] == "-51000.00"
    assert store.count_shadow_runs(db, "ERCOT", DAY) >= 2  # each comparison is recorded

    # a day without data, an unknown ISO and a tenant key
    assert client.get("/ui/markets/ERCOT/2026-10-21").status_code == 404
    unknown = client.get("/ui/markets/NYISO/2026-10-20")
    assert unknown.status_code == 404 and "No ISO" in unknown.text and "NYISO" in unknown.text
    # an ISO a plugin registered rules for is known to the dashboard: no data that day, but no "No ISO"
    from kwhub.core.markets.rules import register_market_rules, unregister_market_rules
    from tests.test_markets_iso_rules import TOY
    register_market_rules(TOY)
    try:
        toy = client.get("/ui/markets/TOYISO/2026-10-20")
        assert toy.status_code == 404 and "No ISO" not in toy.text
    finally:
        unregister_market_rules("TOYISO")
    assert client.get("/ui/markets/ERCOT/2026-13-01").status_code == 422
    tenant = TestClient(client.app)
    form = tenant.get("/ui/login")
    tenant.post("/ui/login", data={"key": keys["tenant_a"], "csrf_token": csrf_of(form.text)})
    r = tenant.get(f"/ui/markets/ERCOT/{DAY}")
    assert r.status_code == 403 and "markets:read" in r.text
