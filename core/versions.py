"""Settlement version rules and the numbering policy, as pure decisions over a period's runs.

A contract's runs of one billing period move through the version kinds ``initial`` ->
``final`` -> ``true_up`` (each kind with a sequence). The hub loads the runs, asks
:func:`plan_version` what a new run of a kind would be, computes it, and asks
:func:`rerun_decision` what to do with it when that kind was settled before; it never
decides these itself. Statuses (see ``docs/data-model.md``): ``draft`` and ``held`` are
pending a decision, ``issued`` and ``no_change`` are settled, ``rejected`` and
``superseded`` are out of the game.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

VERSION_KINDS: tuple[str, ...] = ("initial", "final", "true_up")
PENDING = ("draft", "held")
SETTLED = ("issued", "no_change")
CLOSED = ("rejected", "superseded")


class VersionError(ValueError):
    """A run that the version rules do not allow now; the message says what to do."""


def kind_order(kind: str) -> int:
    if kind not in VERSION_KINDS:
        raise VersionError(f"version must be one of {', '.join(VERSION_KINDS)}, not {kind!r}")
    return VERSION_KINDS.index(kind)


def _order(run: Mapping[str, Any]) -> tuple[int, int]:
    return kind_order(run["version_kind"]), int(run["seq"])


@dataclass(frozen=True)
class VersionPlan:
    """What a new run of ``version`` is: its delta base (the latest settled earlier run, or
    for a true-up also the latest settled true-up), the latest live run of the same kind
    (``same``, compared with on a rerun) and the next free sequence of the kind."""

    version: str
    base: Mapping[str, Any] | None
    same: Mapping[str, Any] | None
    next_seq: int


def plan_version(runs: Sequence[Mapping[str, Any]], version: str, where: str = "") -> VersionPlan:
    """The plan of a new ``version`` run among ``runs`` (rows with ``id``, ``version_kind``,
    ``seq``, ``status``); :class:`VersionError` when a later version exists or an earlier one
    waits for review."""
    mine = kind_order(version)
    prefix = f"{where}: " if where else ""
    live = [r for r in runs if r["status"] not in CLOSED]
    later = sorted((r for r in live if kind_order(r["version_kind"]) > mine), key=_order)
    if later:
        r = later[-1]
        raise VersionError(f"{prefix}a later version ({r['id']}, {r['status']}) exists, so the {version} version is "
                           "closed; settle --version true_up to bill later changes")
    earlier = [r for r in live if kind_order(r["version_kind"]) < mine]
    waiting = sorted((r for r in earlier if r["status"] in PENDING), key=_order)
    if waiting:
        r = waiting[-1]
        raise VersionError(f"{prefix}run {r['id']} is {r['status']} awaiting review; approve or reject it first "
                           f"(`kwhub runs approve {r['id']} --reason ...` or `kwhub runs reject ...`)")
    same_kind = sorted((r for r in live if r["version_kind"] == version), key=_order)
    base = [r for r in earlier if r["status"] in SETTLED]
    if version == "true_up":
        base += [r for r in same_kind if r["status"] in SETTLED]
    top = max((int(r["seq"]) for r in runs if r["version_kind"] == version), default=0)  # closed ones count too
    return VersionPlan(version, max(base, key=_order) if base else None, same_kind[-1] if same_kind else None, top + 1)


Rerun = Literal["new", "unchanged", "supersede"]


def rerun_decision(plan: VersionPlan, same_hash_now: str | None, changes_something: bool, where: str = "") -> Rerun:
    """What a recomputed run does when its kind was settled before.

    ``same_hash_now``: the statement hash the new computation has under the earlier run's
    identity; ``changes_something``: whether it would issue a document. ``unchanged``: the
    same data (or a true-up with nothing left to correct): nothing is written.
    ``supersede``: the earlier run is still pending and gives way to a new sequence.
    ``new``: no earlier run of the kind, or a true-up after a settled one.
    :class:`VersionError` for a settled ``initial``/``final`` whose data changed.
    """
    same = plan.same
    if same is None:
        return "new"
    if same_hash_now == same["statement_hash"] or (same["status"] in SETTLED and plan.version == "true_up"
                                                   and not changes_something):
        return "unchanged"
    if same["status"] in SETTLED and plan.version != "true_up":
        prefix = f"{where}: " if where else ""
        raise VersionError(
            f"{prefix}the {plan.version} run {same['id']} was {str(same['status']).replace('_', ' ')} from other "
            "data (its inputs changed since); settle the next version (--version final or true_up) to bill the "
            "difference")
    return "supersede" if same["status"] in PENDING else "new"


def format_number(seller: str, n: int) -> str:
    """The printed invoice number of a seller's n-th document (numbers have no gaps per seller)."""
    return f"{seller.upper()}-{n:06d}"
