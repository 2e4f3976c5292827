"""Validation, estimation and editing (VEE) of interval data: pure numpy, no I/O.

:class:`VeeEngine` runs rules (plugins registered through ``kwhub_register_vee_rules``)
configured per channel group (:class:`VeeConfig`) and writes nothing: it returns the
validated layer and the events; ``kwhub.hub.ingest.vee`` stores them.
"""

from kwhub.core.vee.config import EstimationConfig, GroupConfig, VeeConfig, VeeConfigError
from kwhub.core.vee.engine import (
    ChannelFrame,
    Finding,
    PreparedBlock,
    RegisterReads,
    Rule,
    RuleConfig,
    ValidatedDays,
    VeeContext,
    VeeEngine,
    VeeEvent,
    VeeOutcome,
)

__all__ = [
    "ChannelFrame", "EstimationConfig", "Finding", "GroupConfig", "PreparedBlock", "RegisterReads", "Rule",
    "RuleConfig", "VeeConfig", "VeeConfigError", "VeeContext", "VeeEngine", "ValidatedDays", "VeeEvent", "VeeOutcome",
]
