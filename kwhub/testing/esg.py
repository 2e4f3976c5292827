"""ESG family checks.

The ESG family's typed contract (an emissions input built from a settlement run's frozen
allocation and a disclosure writer interface) is being written (issue 12, item 6). Its
checks belong here, taking a writer and a sample input as the meter and ERP checks do.
Until then :func:`check_esg_reporter` checks what every ESG adapter already promises: the
generic adapter contract for an ``EsgReporter``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from kwhub.core.adapters import EsgReporter
from kwhub.testing.contract import check_adapter_contract, require


def check_esg_reporter(cls: type[EsgReporter], config: Mapping[str, Any] | None = None) -> EsgReporter:
    """The class is an ``EsgReporter`` that meets the adapter contract; returns an instance."""
    require(isinstance(cls, type) and issubclass(cls, EsgReporter),
            f"{cls!r} is not a kwhub.core.adapters.EsgReporter subclass")
    return cast(EsgReporter, check_adapter_contract(cls, config))
