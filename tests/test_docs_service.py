"""docs/service.md and the service sections of docs/configuration.md stay true."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_route_the_page_lists_exists_and_every_route_is_listed(api_env_sqlite):
    text = (DOCS / "service.md").read_text()
    table = text.split("## The API", 1)[1].split("**Lists**", 1)[0]
    documented = set()
    for cell in re.findall(r"^\| (.+?) \|", table, flags=re.M):
        for method, path in re.findall(r"`(GET|POST) (/[^`?\s]*)", cell):
            documented.add((method.lower(), _shape(path if path == "/healthz" else "/api/v1" + path)))
    spec = api_env_sqlite.app.openapi()
    served = {(m, _shape(p)) for p, ops in spec["paths"].items() for m in ops}
    assert documented == served


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_the_scheduler_example_is_valid():
    from kwhub.hub.scheduler.settings import SchedulerSettings

    text = (DOCS / "configuration.md").read_text()
    block = next(b for b in re.findall(r"```toml\n(.*?)```", text, flags=re.S) if "[scheduler.close]" in b)
    settings = SchedulerSettings.model_validate(tomllib.loads(block)["scheduler"])
    assert settings.close.contracts["ppa_b_solar"].final_days == 45
    assert settings.jobs[0].cron == "30 2 * * *"


def test_the_init_template_s_service_example_is_valid_when_uncommented(tmp_path):
    from kwhub.hub.config import load_config

    template = Path(__file__).resolve().parents[1] / "hub" / "templates" / "kwhub.example.toml"
    text = template.read_text()
    head, tail = text.split("# --- Running as a service", 1)
    body = "\n".join(ln[2:] if ln.startswith("# ") and not ln.startswith("# ---") else ln
                     for ln in tail.splitlines()[1:])
    body = body.replace('transport = "erp_hook"', 'transport = "erp_drop"').replace('"inbox/meters"', '"inbox"')
    (tmp_path / "kwhub.toml").write_text(head + body)
    cfg = load_config(tmp_path / "kwhub.toml")
    assert cfg.file.scheduler.close.initial_days == 3 and cfg.file.service.webhooks[0].id == "erp_events"
