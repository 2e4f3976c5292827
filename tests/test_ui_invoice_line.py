"""An invoice line drilled down to its determinants and the intervals behind it, tenant-isolated.

Test campus (tests.fixtures.settlement, America/New_York): tenant A draws 100 kWh per 15 minutes
in October 2026 (31 days of 96 intervals, no DST change: 2,976 intervals, 297,600 kWh); its
invoice's line 1 bills that energy at 50 USD/MWh: 297.6 MWh x 50 = 14,880.00 USD.
"""

from __future__ import annotations

import re

import numpy as np

from tests.fixtures.ui import signed_in


def _rows(html: str, attr: str) -> dict[str, list[str]]:
    out = {}
    for key, body in re.findall(rf'<tr {attr}="([^"]+)">(.*?)</tr>', html, re.S):
        out[key] = [" ".join(re.sub(r"<[^>]+>", " ", c).split())
                    for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", body, re.S)]
    return out


def _table(html: str, channel: str) -> str:
    m = re.search(rf'<table class="line-channel" data-channel="{re.escape(channel)}">(.*?)</table>', html, re.S)
    assert m, f"no table for {channel}"
    return m.group(1)


def test_a_line_opens_its_determinants_and_the_intervals_behind_it(ui_env_sqlite):
    from kwhub.core.intervals import ChannelSeries
    from kwhub.core.quality import Quality

    env = ui_env_sqlite
    inv = env.api.invoices["tenant_a"]
    op, _ = signed_in(env, "operator")
    page = op.get(f"/ui/invoices/{inv}/lines/1")
    assert page.status_code == 200, page.text[-600:]
    html = page.text
    assert "14,880.00 USD" in html  # 297.6 MWh x 50 USD/MWh
    dets = _rows(html, "data-determinant")
    assert dets, "no determinants table"
    a = _table(html, "a.load")
    days = _rows(a, "data-day")
    # 31 local days of 96 intervals x 100 kWh = 9,600 kWh each, 297,600 kWh in the period
    assert len(days) == 31 and days["2026-10-01"][1:] == ["96", "9,600.000 kWh", "ok"]
    # except 31 October: November's data, written after the run from 2026-11-01T00:00Z, replaced its last
    # 16 intervals (20:00-24:00 EDT) with 1,000 kWh each: 80 x 100 + 16 x 1,000 = 24,000 kWh, and that
    # stored day is marked as changed since the run (the run read it at 100 kWh)
    assert {k: v[1:] for k, v in days.items() if v[1:] != ["96", "9,600.000 kWh", "ok"]} == \
        {"2026-10-31": ["96", "24,000.000 kWh", "ok changed since the run"]}
    assert "312,000.000 kWh in the period" in a  # 297,600 + 16 x 900
    assert "1 stored day(s) changed since the run" in a
    assert 'data-channel="b.load"' in html  # the operator reads every channel the run read

    # a later edit of three intervals on 5 October: the page flags them and says the day changed since the run
    start = 1_791_172_800  # 2026-10-05T04:00:00Z = local midnight (EDT)
    starts = np.array([start + 3600, start + 4500, start + 5400], dtype=np.int64)
    q = np.array([Quality.SUSPECT, Quality.ESTIMATED, Quality.EDITED], dtype=np.uint8)
    env.api.hub.db.intervals.write_series([ChannelSeries("a.load", 15, starts, np.array([100.0, 80.0, 50.0]), q)],
                                          layer="validated")
    a = _table(op.get(f"/ui/invoices/{inv}/lines/1").text, "a.load")
    # 9,600 - 20 (estimated at 80) - 50 (edited to 50) = 9,530 kWh on the 5th
    assert _rows(a, "data-day")["2026-10-05"][1:3] == ["96", "9,530.000 kWh"]
    assert "2 stored day(s) changed since the run" in a
    assert _rows(a, "data-day")["2026-10-05"][-1] == "E2 S1 changed since the run"
    link = f"/ui/invoices/{inv}/lines/1/intervals/a.load/2026-10-05"
    assert f'href="{link}"' in a
    day = op.get(link)
    assert day.status_code == 200 and day.text.count('class="flagged"') == 3
    assert "suspect" in day.text and "estimated" in day.text and "edited" in day.text and "EDT" in day.text
    assert "Back to line 1" in day.text and "the run read data version" in day.text
    assert len(re.findall(r"<tr(?: class=\"flagged\")?><td>2026-10-05 ", day.text)) == 96
    # outside the line's period, a channel the run did not read, a bad day
    assert op.get(f"/ui/invoices/{inv}/lines/1/intervals/a.load/2026-11-05").status_code == 404
    assert op.get(f"/ui/invoices/{inv}/lines/1/intervals/gt1.avail.nope/2026-10-05").status_code == 404
    assert op.get(f"/ui/invoices/{inv}/lines/1/intervals/a.load/2026-10-32").status_code == 422


def test_a_tenant_drills_into_its_own_line_only(ui_env_sqlite):
    env = ui_env_sqlite
    mine, other = env.api.invoices["tenant_a"], env.api.invoices["tenant_b"]
    client, _ = signed_in(env, "tenant_a")
    html = client.get(f"/ui/invoices/{mine}/lines/1").text
    assert 'data-channel="a.load"' in html
    # tenant B's load and the campus channels are read by the pro-rata run but are not tenant A's
    assert 'data-channel="b.load"' not in html and "belong to other parties and are not shown" in html
    assert client.get(f"/ui/invoices/{mine}/lines/1/intervals/a.load/2026-10-05").status_code == 200
    assert client.get(f"/ui/invoices/{mine}/lines/1/intervals/b.load/2026-10-05").status_code == 404
    # another tenant's invoice: 404 at every level, with nothing of it on the page
    for path in (f"/ui/invoices/{other}/lines/1", f"/ui/invoices/{other}/lines/1/intervals/b.load/2026-10-05"):
        r = client.get(path)
        assert r.status_code == 404 and "Hall B" not in r.text and "b.load" not in r.text.replace(path, "")
