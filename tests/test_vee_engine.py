"""The VEE engine: per-group configuration, rule plugins through the hook, per-value records."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from kwhub.core.hookspecs import hookimpl
from kwhub.core.quality import Quality
from kwhub.core.vee import (
    Finding,
    Rule,
    RuleConfig,
    VeeConfig,
    VeeConfigError,
    VeeContext,
    VeeEngine,
)
from kwhub.hub.registry import load_plugins
from tests.fixtures.vee import day_block, make_engine, vee_channel

NAN = np.nan


class _OddHourConfig(RuleConfig):
    """Flag values above ``limit`` in odd hours."""

    limit: float = 100.0


class OddHourRule(Rule):
    """A third-party test rule: flags odd-hour values above a limit."""

    rule_id: ClassVar[str] = "odd_hour"
    Config = _OddHourConfig
    config: _OddHourConfig

    def check(self, frame):
        odd = (np.arange(frame.n_slots) % 2 == 1)[None, :]
        mask = frame.present & odd & (frame.values > self.config.limit)
        return Finding(mask, "flag", detail={"limit": self.config.limit}) if mask.any() else None


class OddHourPlugin:
    @hookimpl
    def kwhub_register_vee_rules(self, register):
        register(OddHourRule)


def test_a_plugin_rule_registered_through_the_hook_is_picked_up_and_runs():
    reg = load_plugins(use_entry_points=False, extra=[("odd_hour_plugin", OddHourPlugin())])
    assert reg.vee_rules["odd_hour"] is OddHourRule
    assert "vee_rule:odd_hour" in reg.plugins["odd_hour_plugin"].extensions
    assert "gap" in reg.vee_rules  # built-ins still there
    cfg = VeeConfig.model_validate({"groups": {"default": {"rules": {"odd_hour": {"limit": 50.0}}}}})
    eng = VeeEngine(reg.vee_rules, cfg)
    v = [30.0] * 24
    v[3], v[4], v[6] = 55.0, 55.0, NAN  # below every built-in limit
    out = eng.validate(vee_channel(), [day_block(v)])
    b = out.validated[0]
    assert b.quality[3] == Quality.SUSPECT and b.quality[4] == Quality.VALID
    assert b.rule_names[b.rule_ids[3] - 1] == "odd_hour" and b.rule_names[b.rule_ids[6] - 1] == "gap"
    assert any(e.rule_id == "odd_hour" and e.count == 1 and e.detail == {"limit": 50.0} for e in out.events)


def test_rules_are_configured_per_channel_group(vee_rules):
    cfg = VeeConfig.from_mapping({"groups": {
        "default": {"rules": {"spike": {"ratio": 3.0}}},
        "noisy": {"rules": {"spike": {"ratio": 10.0}}},
        "quiet": {"rules": {"spike": {"enabled": False}}},
    }})
    eng = VeeEngine(vee_rules, cfg)
    v = [10.0] * 24
    v[7] = 50.0
    assert eng.validate(vee_channel(group="default"), [day_block(v)]).validated[0].quality[7] == Quality.SUSPECT
    assert eng.validate(vee_channel(group="noisy"), [day_block(v)]).validated[0].quality[7] == Quality.VALID
    assert eng.validate(vee_channel(group="quiet"), [day_block(v)]).validated[0].quality[7] == Quality.VALID
    # an unconfigured group uses the default group's settings
    assert eng.validate(vee_channel(group="other"), [day_block(v)]).validated[0].quality[7] == Quality.SUSPECT
    assert "spike" not in [r.rule_id for r in eng.rules_for("quiet")]


def test_groups_inherit_default_settings_key_by_key():
    cfg = VeeConfig.from_mapping({"groups": {
        "default": {"rules": {"spike": {"ratio": 4.0, "min_kwh": 2.0}},
                    "estimation": {"max_linear_gap": 2}},
        "g": {"rules": {"spike": {"ratio": 6.0}}},
        "fresh": {"inherit": False, "rules": {}},
    }})
    assert cfg.rule_settings("g", "spike") == {"ratio": 6.0, "min_kwh": 2.0}
    assert cfg.rule_settings("fresh", "spike") == {}
    assert cfg.estimation("g").max_linear_gap == 2
    assert cfg.estimation("fresh").max_linear_gap == 4
    assert VeeConfig.from_mapping(None).estimation("default").max_estimated_run == 96


def test_bad_settings_name_the_key_path(vee_rules):
    with pytest.raises(VeeConfigError, match=r"vee.groups.default.rules.spike.ratoi: unknown key"):
        VeeEngine(vee_rules, VeeConfig.from_mapping({"groups": {"default": {"rules": {"spike": {"ratoi": 2}}}}}))
    with pytest.raises(VeeConfigError, match=r"unknown VEE rule 'spikes'"):
        VeeEngine(vee_rules, VeeConfig.from_mapping({"groups": {"default": {"rules": {"spikes": {}}}}}))
    with pytest.raises(VeeConfigError, match=r"vee.groups.default.estimation.max_linear_gapp"):
        VeeConfig.from_mapping({"groups": {"default": {"estimation": {"max_linear_gapp": 3}}}})
    with pytest.raises(VeeConfigError, match=r"ratio"):
        VeeEngine(vee_rules, VeeConfig.from_mapping({"groups": {"x": {"rules": {"spike": {"ratio": 0.5}}}}}))


def test_quality_and_rule_recorded_per_value_and_raw_untouched():
    v = [10.0] * 24
    v[2] = NAN  # gap -> estimated
    v[9] = -3.0  # negative -> suspect
    v[15] = 90.0  # spike -> estimated (rule setting)
    raw = day_block(v)
    raw_copy = raw.values.copy(), raw.quality.copy()
    eng = make_engine("gap", "negative", "spike", spike={"action": "estimate"})
    out = eng.validate(vee_channel(), [raw])
    b = out.validated[0]
    names = [b.rule_names[i - 1] if i else "" for i in b.rule_ids]
    assert names[2] == "gap" and names[9] == "negative" and names[15] == "spike"
    assert sum(1 for n in names if n) == 3
    assert b.quality[2] == b.quality[15] == Quality.ESTIMATED and b.quality[9] == Quality.SUSPECT
    assert b.values[15] == 10.0 and b.values[9] == -3.0
    np.testing.assert_array_equal(raw.values, raw_copy[0])
    np.testing.assert_array_equal(raw.quality, raw_copy[1])
    assert out.counts() == {"gap": {"flagged": 1, "estimated": 1, "edited": 0},
                            "negative": {"flagged": 1, "estimated": 0, "edited": 0},
                            "spike": {"flagged": 1, "estimated": 1, "edited": 0}}
    # the same input gives the same content (hash) twice
    again = eng.validate(vee_channel(), [day_block(v)]).validated[0]
    assert again.content_hash() == b.content_hash()


def test_context_days_are_not_output_and_suspect_neighbours_are_not_anchors():
    v = [10.0] * 24
    v[5] = NAN
    v[6] = 1000.0  # a spike next to the gap: not used to interpolate
    v[4] = 12.0
    eng = make_engine("gap", "spike")
    out = eng.validate(vee_channel(), [day_block(v)], VeeContext())
    assert len(out.validated) == 1
    b = out.validated[0]
    assert b.quality[6] == Quality.SUSPECT
    assert b.values[5] == pytest.approx(12.0 - 2.0 / 3.0)  # on the line from 12 (slot 4) to 10 (slot 7)


def test_empty_input_gives_empty_outcome(vee_rules):
    out = VeeEngine(vee_rules).validate(vee_channel(), [])
    assert out.validated == [] and out.events == []


_SEEN: list[tuple[str, bool]] = []


class _MaskSpy(Rule):
    """Checks that the frame's cached masks equal what the values and quality say now."""

    def check(self, frame):
        fresh_present = np.isfinite(frame.values) & (frame.quality != Quality.MISSING)
        fresh_usable = np.isfinite(frame.values) & (frame.quality <= Quality.EDITED)
        raw = np.isfinite(frame.raw_values).ravel()
        idx = np.flatnonzero(raw)
        inside = np.zeros(raw.size, dtype=bool)
        if idx.size:
            inside[idx[0]:idx[-1] + 1] = True
        ok = (np.array_equal(frame.present, fresh_present) and np.array_equal(frame.usable, fresh_usable)
              and np.array_equal(frame.inside_data(), inside.reshape(frame.values.shape))
              and not (frame.present.flags.writeable or frame.usable.flags.writeable))
        _SEEN.append((self.rule_id, ok))
        return None


class _SpyFirst(_MaskSpy):
    rule_id: ClassVar[str] = "spy_first"
    order: ClassVar[int] = 1


class _EditToNan(Rule):
    """Edits the values above 900 to NaN (a plugin edit that changes what is present)."""

    rule_id: ClassVar[str] = "edit_nan"
    order: ClassVar[int] = 15

    def check(self, frame):
        mask = frame.present & (frame.values > 900)
        return Finding(mask, "edit", values=np.full(frame.values.shape, np.nan)) if mask.any() else None


class _SpyAfterEdit(_MaskSpy):
    rule_id: ClassVar[str] = "spy_after_edit"
    order: ClassVar[int] = 16


class _SpyAfterFlags(_MaskSpy):
    rule_id: ClassVar[str] = "spy_after_flags"
    order: ClassVar[int] = 99


class _SpyPost(_MaskSpy):
    rule_id: ClassVar[str] = "spy_post"
    phase: ClassVar = "post"
    order: ClassVar[int] = 200


def test_the_frame_masks_given_to_rules_follow_every_edit_flag_and_estimate():
    """present/usable/inside_data are computed once per frame state: after an edit (values to
    NaN), flags (SUSPECT is not usable) and estimation they are what the arrays say, read-only."""
    extra = {c.rule_id: c for c in (_SpyFirst, _EditToNan, _SpyAfterEdit, _SpyAfterFlags, _SpyPost)}
    eng = make_engine("gap", "spike", "negative", *extra, extra_rules=extra)
    v = [30.0] * 24
    v[2], v[5], v[9], v[10], v[20] = 950.0, -4.0, NAN, NAN, 400.0  # an edit, a negative, a gap, a spike
    _SEEN.clear()
    out = eng.validate(vee_channel(), [day_block(v)])
    assert [name for name, _ in _SEEN] == ["spy_first", "spy_after_edit", "spy_after_flags", "spy_post"]
    assert all(ok for _, ok in _SEEN), _SEEN
    b = out.validated[0]
    names = [b.rule_names[i - 1] if i else None for i in b.rule_ids.tolist()]
    assert b.quality[5] == Quality.SUSPECT and names[5] == "negative"
    assert b.quality[20] == Quality.SUSPECT and names[20] == "spike"
    # the edited NaN is a gap for the gap rule (it saw the edit) and is estimated like the others
    assert b.quality[[2, 9, 10]].tolist() == [Quality.ESTIMATED] * 3 and names[2] == names[9] == "gap"
