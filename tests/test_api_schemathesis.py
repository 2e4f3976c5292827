"""schemathesis against ``/openapi.json`` in process (ASGI), with every check it has, for an
operator key and a tenant key: no failure.

Each operation of the schema is driven by schemathesis' generated cases (hypothesis)
and every check schemathesis has runs on each answer, writes included (approve, reject,
settle, reload, retry, key creation and revocation). The database is the settled
October of the ``api_env_sqlite`` fixture (the PostgreSQL answers are covered by the
BOLA and RLS tests).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CHECKS, load_all_checks

load_all_checks()
ALL_CHECKS = CHECKS.get_all()
EXAMPLES = 8


@pytest.mark.parametrize("who", ["operator", "tenant_a"])
def test_api_conforms_to_its_schema(api_env_sqlite, who):  # noqa: ANN001
    env = api_env_sqlite
    schema = schemathesis.openapi.from_asgi("/openapi.json", env.app)
    headers = {"Authorization": f"Bearer {env.keys[who]}"}
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case) -> None:  # noqa: ANN001
            case.call_and_validate(headers=headers, checks=ALL_CHECKS)

        run()
