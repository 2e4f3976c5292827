"""Shared test setup.

Installed entry points are never auto-loaded under tests: the plugin manager registers the
built-in modules directly. Fixture modules live in ``tests/fixtures/`` (one per area) and
are loaded here. ``KWHUB_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns a skip for a
missing local server (PostgreSQL, Mosquitto, sshd) into a failure.
"""

from __future__ import annotations

import os
import pkgutil
from pathlib import Path

os.environ["KWHUB_NO_ENTRYPOINTS"] = "1"

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.exists():  # tox runs from the repo root; ../shared sits beside the clone
    SHARED = Path(os.environ.get("KWHUB_SHARED", Path.cwd().parent / "shared"))

# services first: the other fixture modules import its helpers
pytest_plugins = [
    f"tests.fixtures.{m.name}"
    for m in sorted(pkgutil.iter_modules([str(Path(__file__).parent / "fixtures")]),
                    key=lambda m: (m.name != "services", m.name))
]
