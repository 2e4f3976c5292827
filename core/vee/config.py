"""VEE configuration: rules and limits per channel group, with sensible defaults.

Shape (``[vee]`` in ``kwhub.toml``)::

    [vee.groups.default.rules.spike]
    ratio = 3.0
    [vee.groups.default.estimation]
    max_linear_gap = 4          # gaps up to 4 intervals: linear interpolation
    max_estimated_run = 96      # longer runs of estimates are flagged (prolonged_estimation)
    [vee.groups.solar.rules.zero]
    enabled = false             # solar output is zero every night

Every registered rule runs with its default settings unless its group disables it. A
group other than ``default`` inherits the ``default`` group's rule settings and overrides
them key by key (``inherit = false`` starts from the rules' own defaults instead).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_GROUP = "default"


class VeeConfigError(ValueError):
    """VEE settings that do not fit the registered rules; lists every bad key path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid VEE configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class EstimationConfig(BaseModel):
    """How missing (or rejected) intervals are estimated.

    ``max_linear_gap``: runs of at most this many intervals are interpolated linearly
    between their neighbours (flat fill when only one side is known). Longer runs use the
    historical profile (proxy day): the mean of the same slot over the previous
    ``proxy_days`` days (only the same weekday when ``same_weekday``), scaled so that the
    ``scale_window`` known intervals on each side of the gap match the profile. A run that
    lies between two register reads is filled by spreading the register difference.
    ``max_estimated_run`` is the longest acceptable run of consecutive estimates; the
    ``prolonged_estimation`` rule flags longer runs.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_linear_gap: int = Field(default=4, ge=0)
    max_estimated_run: int = Field(default=96, ge=1)
    proxy_days: int = Field(default=28, ge=1, le=366)
    same_weekday: bool = True
    min_proxy_days: int = Field(default=1, ge=1)
    scale_to_neighbours: bool = True
    scale_window: int = Field(default=4, ge=1)
    register_spread: bool = True
    long_gap_fallback: Literal["linear", "none"] = "linear"

    @property
    def lookback_days(self) -> int:
        """History days the estimator may look at before a gap's day."""
        return self.proxy_days


class GroupConfig(BaseModel):
    """Rules and estimation settings of one channel group."""

    model_config = ConfigDict(extra="forbid")

    inherit: bool = True
    rules: dict[str, dict[str, Any]] = Field(default_factory=dict)
    estimation: EstimationConfig | None = None

    @field_validator("rules", mode="before")
    @classmethod
    def _tables(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for rid, settings in v.items():
                if not isinstance(settings, dict):
                    raise ValueError(f"rules.{rid} must be a table of settings, got {type(settings).__name__}")
        return v


class VeeConfig(BaseModel):
    """VEE settings for every channel group (``Channel.group``); ``default`` always exists."""

    model_config = ConfigDict(extra="forbid")

    groups: dict[str, GroupConfig] = Field(default_factory=lambda: {DEFAULT_GROUP: GroupConfig()})

    @classmethod
    def from_mapping(cls, data: dict[str, Any] | None) -> VeeConfig:
        """Build from the ``[vee]`` table (``None`` or ``{}`` gives the defaults)."""
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                path = ".".join(str(x) for x in err["loc"])
                msg = "unknown key (not allowed here)" if err["type"] == "extra_forbidden" else err["msg"]
                problems.append(f"vee.{path}: {msg}")
            raise VeeConfigError(problems) from None

    def group_names(self) -> list[str]:
        names = list(self.groups)
        return names if DEFAULT_GROUP in names else [DEFAULT_GROUP, *names]

    def rule_settings(self, group: str, rule_id: str) -> dict[str, Any]:
        """Effective settings of ``rule_id`` in ``group`` (inheriting from ``default``)."""
        base = self.groups.get(DEFAULT_GROUP, GroupConfig())
        g = self.groups.get(group)
        if g is None or group == DEFAULT_GROUP:
            return dict(base.rules.get(rule_id, {}))
        merged = dict(base.rules.get(rule_id, {})) if g.inherit else {}
        merged.update(g.rules.get(rule_id, {}))
        return merged

    def estimation(self, group: str) -> EstimationConfig:
        """Effective estimation settings of ``group``."""
        g = self.groups.get(group)
        if g is not None and g.estimation is not None:
            return g.estimation
        base = self.groups.get(DEFAULT_GROUP)
        if base is not None and base.estimation is not None and (g is None or g.inherit):
            return base.estimation
        return EstimationConfig()

    def check_rules(self, known: dict[str, type]) -> list[str]:
        """Problems of the rule settings against the registered rules' ``Config`` classes."""
        problems: list[str] = []
        for gname, g in self.groups.items():
            for rid in g.rules:
                cls = known.get(rid)
                where = f"vee.groups.{gname}.rules.{rid}"
                if cls is None:
                    problems.append(f"{where}: unknown VEE rule {rid!r} (known: {', '.join(sorted(known))})")
                    continue
                try:
                    cls.Config.model_validate(self.rule_settings(gname, rid))  # type: ignore[attr-defined]
                except ValidationError as exc:
                    for err in exc.errors():
                        loc = ".".join(str(x) for x in err["loc"])
                        msg = "unknown key (not allowed here)" if err["type"] == "extra_forbidden" else err["msg"]
                        problems.append(f"{where}.{loc}: {msg}")
        return problems
