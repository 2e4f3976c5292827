"""`kwhub config check` and `kwhub adapters check` name what a party lacks for the formats it
receives (payment account, seller tax_id, Peppol endpoint), with the party and the key to set,
and exit non-zero; a complete configuration passes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from kwhub.hub.cli.main import app

COMPLETE = """
[hub]
name = "party check"
timezone = "America/New_York"

[[sites]]
id = "campus"

[[parties]]
id = "op"
name = "Campus Operator LLC"
tax_id = "12-3456789"
tax_scheme = "EIN"
endpoint_id = "5790000435975"
endpoint_scheme = "0088"
payment = { means_code = "30", account_number = "4400198765", routing_number = "031000503" }

[[parties]]
id = "tenant_a"
name = "Hall A Compute Inc."
endpoint_id = "123456789"
endpoint_scheme = "0060"
delivery = { formats = ["ubl"], transports = ["drop"] }

[[channels]]
id = "a.load"
party = "tenant_a"
role = "tenant_load"

[[adapters]]
type = "erp.folder"
id = "drop"
[adapters.config]
folder = "out/erp"

[[contracts]]
id = "ppa-a"
seller = "op"
buyer = "tenant_a"
tax_percent = "6"

[[contracts.components]]
kind = "fixed_energy"
price_per_mwh = "50"
"""

INCOMPLETE = (COMPLETE
              .replace('tax_id = "12-3456789"\ntax_scheme = "EIN"\n', "")
              .replace('payment = { means_code = "30", account_number = "4400198765", routing_number = "031000503" }\n', "")
              .replace('endpoint_id = "123456789"\nendpoint_scheme = "0060"\n', ""))


def _run(tmp_path, monkeypatch, text: str, *args: str):  # noqa: ANN001, ANN202
    (tmp_path / "kwhub.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    return CliRunner().invoke(app, list(args))


def test_config_check_passes_a_complete_configuration(tmp_path, monkeypatch):
    res = _run(tmp_path, monkeypatch, COMPLETE, "config", "check")
    assert res.exit_code == 0, res.output
    assert "is complete for every contract and delivery format" in " ".join(res.output.split())


def test_config_check_names_each_missing_field_and_exits_non_zero(tmp_path, monkeypatch):
    res = _run(tmp_path, monkeypatch, INCOMPLETE, "config", "check", "--json")
    assert res.exit_code == 1, res.output
    out = json.loads(res.output)
    assert out["config"].endswith("kwhub.toml")
    problems = out["problems"]
    assert {(p["contract"], p["format"]) for p in problems} == {("ppa-a", "ubl")}
    msgs = [p["message"] for p in problems]
    assert len(msgs) == 3, msgs
    payment, tax, endpoint = msgs
    assert payment.startswith('party "op" (seller): set payment (payment.iban or payment.account_number, '
                              "payment.means_code)") and "BR-61" in payment
    assert tax.startswith('party "op" (seller): set tax_id (and tax_scheme') and "BR-S-02" in tax
    assert endpoint.startswith('party "tenant_a" (buyer): set endpoint_id and endpoint_scheme') \
        and "PEPPOL-EN16931-R010" in endpoint

    res = _run(tmp_path, monkeypatch, INCOMPLETE, "config", "check")  # the table names them too
    assert res.exit_code == 1
    flat = " ".join(res.output.split())
    for word in ("ppa-a", "ubl", "payment.account_number", "tax_id", "endpoint_id"):
        assert word in flat


def test_a_zero_rated_contract_needs_no_seller_tax_id_but_a_bad_endpoint_scheme_is_named(tmp_path, monkeypatch):
    text = (COMPLETE.replace('tax_id = "12-3456789"\ntax_scheme = "EIN"\n', "")
            .replace('tax_percent = "6"', 'tax_category = "Z"\ntax_percent = "0"')
            .replace('endpoint_scheme = "0060"', 'endpoint_scheme = "EM"'))
    res = _run(tmp_path, monkeypatch, text, "config", "check", "--json")
    assert res.exit_code == 1, res.output
    msgs = [p["message"] for p in json.loads(res.output)["problems"]]
    assert msgs == ['party "tenant_a" (buyer): endpoint_scheme \'EM\' is not in the Peppol Electronic Address Scheme '
                    "list (PEPPOL-EN16931-CL008; e.g. 0088 GLN, 0060 DUNS, 9959 US EIN)"]


def test_adapters_check_reports_the_same_problems(tmp_path, monkeypatch):
    (tmp_path / "out" / "erp").mkdir(parents=True)
    res = _run(tmp_path, monkeypatch, INCOMPLETE, "adapters", "check", "--json")
    assert res.exit_code == 1, res.output
    rows = json.loads(res.output)
    rows = rows["results"] if isinstance(rows, dict) else rows
    drop = [r for r in rows if r["id"] == "drop"]
    assert drop and drop[0]["ok"] is True
    party = [r for r in rows if r["id"] == "contract ppa-a"]
    assert [r["type"] for r in party] == ["format ubl"] * 3
    assert all(r["ok"] is False and r["kind"] == "configuration" for r in party)
    assert any('party "op" (seller): set payment' in r["message"] for r in party)
    assert any('party "op" (seller): set tax_id' in r["message"] for r in party)
    assert any('party "tenant_a" (buyer): set endpoint_id' in r["message"] for r in party)

    res = _run(tmp_path, monkeypatch, COMPLETE, "adapters", "check", "--json")
    assert res.exit_code == 0, res.output


def test_standard_rate_at_zero_and_exempt_without_reason_are_refused_with_the_key_path(tmp_path, monkeypatch):
    # issue 18: zero tax used to be written as category S at 0 %, which EN 16931 (BR-S-05) refuses
    s_at_zero = COMPLETE.replace('tax_percent = "6"', 'tax_category = "S"\ntax_percent = "0"')
    res = _run(tmp_path, monkeypatch, s_at_zero, "config", "check")
    flat = " ".join((res.output + str(res.exception or "")).split())  # the CLI prints the ConfigError
    assert res.exit_code != 0 and 'contracts[0] (id="ppa-a"): tax_category: S' in flat and "BR-S-05" in flat and "use Z (zero rated)" in flat
    exempt = COMPLETE.replace('tax_percent = "6"', 'tax_category = "E"\ntax_percent = "0"')
    res = _run(tmp_path, monkeypatch, exempt, "config", "check")
    flat = " ".join((res.output + str(res.exception or "")).split())  # the CLI prints the ConfigError
    assert res.exit_code != 0 and "tax_exemption_reason: required for tax_category E" in flat
    with_reason = COMPLETE.replace('tax_percent = "6"', 'tax_category = "E"\ntax_percent = "0"\n'
                                   'tax_exemption_reason = "Exempt supply of electricity"')
    res = _run(tmp_path, monkeypatch, with_reason, "config", "check")
    assert res.exception is None and "tax_exemption_reason" not in res.output, res.output
