"""Settlement version rules as pure decisions (core.versions)."""

from __future__ import annotations

import pytest

from kwhub.core.versions import VersionError, format_number, plan_version, rerun_decision


def _r(kind: str, seq: int, status: str, h: str = "h") -> dict:
    return {"id": f"k:P:{kind}:{seq}", "version_kind": kind, "seq": seq, "status": status, "statement_hash": h}


def test_first_run_of_a_period():
    plan = plan_version([], "initial")
    assert (plan.base, plan.same, plan.next_seq) == (None, None, 1)
    assert rerun_decision(plan, None, True) == "new"


def test_final_is_billed_against_the_settled_initial():
    plan = plan_version([_r("initial", 1, "issued")], "final")
    assert plan.base["id"] == "k:P:initial:1" and plan.next_seq == 1


def test_rerun_on_the_same_data_is_unchanged_and_on_other_data_refused_or_superseded():
    issued = plan_version([_r("initial", 1, "issued", "h1")], "initial")
    assert rerun_decision(issued, "h1", True) == "unchanged"
    with pytest.raises(VersionError, match="settle the next version"):
        rerun_decision(issued, "h2", True, "contract 'k'")
    pending = plan_version([_r("initial", 1, "held", "h1")], "initial")
    assert rerun_decision(pending, "h2", True) == "supersede" and pending.next_seq == 2


def test_a_rejected_run_leaves_its_sequence_taken():
    plan = plan_version([_r("initial", 1, "rejected")], "initial")
    assert plan.same is None and plan.next_seq == 2


def test_true_ups_repeat_against_the_latest_settled_one():
    runs = [_r("initial", 1, "issued"), _r("final", 1, "issued"), _r("true_up", 1, "issued", "t1")]
    plan = plan_version(runs, "true_up")
    assert plan.base["id"] == "k:P:true_up:1" and plan.next_seq == 2
    assert rerun_decision(plan, "t2", True) == "new"
    assert rerun_decision(plan, "t2", False) == "unchanged"  # nothing left to correct


def test_later_versions_close_earlier_ones_and_pending_runs_block_later_ones():
    with pytest.raises(VersionError, match="a later version .* exists"):
        plan_version([_r("final", 1, "issued")], "initial")
    with pytest.raises(VersionError, match="awaiting review; approve or reject it first"):
        plan_version([_r("initial", 1, "held")], "final")
    with pytest.raises(VersionError, match="version must be one of"):
        plan_version([], "draft")


def test_numbering_policy():
    assert format_number("campus_op", 7) == "CAMPUS_OP-000007"
