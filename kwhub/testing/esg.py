"""ESG family checks: a disclosure writer's contract, its files and its validator.

:func:`check_esg_reporter` checks the class (the adapter contract, a ``format_id``, the
``disclose`` capability, ``write`` and ``validate`` implemented); :func:`check_esg_writer`
writes a disclosure (by default :func:`kwhub.testing.disclosures.sample_disclosure`, every
figure worked out by hand) and checks that ``validate`` accepts the files, that writing
again gives the same names and bytes, and that ``validate`` refuses each file cut in half
with a problem naming it (without raising).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from kwhub.core.adapters import EsgReporter
from kwhub.core.disclosure import Disclosure
from kwhub.testing.contract import check_adapter_contract, require


def check_esg_reporter(cls: type[EsgReporter], config: Mapping[str, Any] | None = None) -> EsgReporter:
    """The class is an ``EsgReporter`` with a format, the ``disclose`` capability, ``write`` and ``validate``.

    Returns an instance made with ``config``.
    """
    require(isinstance(cls, type) and issubclass(cls, EsgReporter),
            f"{cls!r} is not a kwhub.core.adapters.EsgReporter subclass")
    name = getattr(cls, "type_id", "") or cls.__name__
    require(isinstance(cls.format_id, str) and bool(cls.format_id),
            f"{name}: set format_id (the name `kwhub esg report --format` takes), e.g. format_id = \"ghg\"")
    require("disclose" in cls.capabilities,
            f"{name}: capabilities {sorted(cls.capabilities)} lack 'disclose' (every ESG writer discloses)")
    for method in ("write", "validate"):
        require(getattr(cls, method) is not getattr(EsgReporter, method),
                f"{name}: implement {method}() (EsgReporter's own {method}() "
                + ("raises" if method == "write" else "accepts anything") + ")")
    return cast(EsgReporter, check_adapter_contract(cls, config))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def check_esg_writer(writer: EsgReporter, disclosure: Disclosure | None = None,
                     work_dir: Path | None = None) -> list[Path]:
    """Write ``disclosure`` under ``work_dir`` and check the files and ``validate``; returns the paths written.

    * ``write`` returns at least one file, every one inside the folder it was given, and
      leaves nothing else there (no temporary file of an atomic write);
    * ``validate`` accepts the files;
    * writing again, into the same folder and into another one, gives the same names and bytes;
    * each file cut in half (the others intact) is refused by ``validate`` with a problem
      naming it, returned rather than raised.

    Without ``work_dir`` the files go to a new temporary folder, left for inspection.
    """
    if disclosure is None:
        from kwhub.testing.disclosures import sample_disclosure

        disclosure = sample_disclosure()
    if work_dir is None:
        work_dir = Path(tempfile.mkdtemp(prefix="kwhub-esg-"))
    name = writer.type_id
    first, second = work_dir / "first", work_dir / "second"
    first.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in writer.write(disclosure, first)]
    require(bool(paths), f"{name}: write() returned no file for a disclosure of {len(disclosure.parties)} parties")
    for p in paths:
        require(p.is_file(), f"{name}: write() returned {p}, which is not a file")
        require(p.resolve().is_relative_to(first.resolve()),
                f"{name}: write() put {p} outside the folder it was given ({first})")
    written = _files(first)
    names = sorted(p.resolve().relative_to(first.resolve()).as_posix() for p in paths)
    require(sorted(written) == names,
            f"{name}: the folder holds {sorted(written)} but write() returned {names} "
            "(a file left behind or not returned; write through a temporary file renamed over the target)")
    problems = writer.validate(paths)
    require(problems == [], f"{name}: validate() refuses the files write() just wrote: {problems}")

    again = [Path(p) for p in writer.write(disclosure, first)]
    require(again == paths, f"{name}: writing the same disclosure again returned {again}, first {paths}")
    require(_files(first) == written, f"{name}: writing the same disclosure again changed the bytes of "
            + ", ".join(k for k, v in _files(first).items() if written.get(k) != v))
    second.mkdir(parents=True, exist_ok=True)
    writer.write(disclosure, second)
    elsewhere = _files(second)
    require(sorted(elsewhere) == names, f"{name}: written into another folder the files are {sorted(elsewhere)}, "
            f"not {names}")
    changed = [k for k in names if elsewhere[k] != written[k]]
    require(not changed, f"{name}: written into another folder, {changed} have other bytes (the output must depend "
            "on the disclosure only, not on the folder or the time)")

    for i, rel in enumerate(names):
        cut_dir = work_dir / f"cut-{i}"
        shutil.rmtree(cut_dir, ignore_errors=True)
        shutil.copytree(first, cut_dir)
        target = cut_dir / rel
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
        copies = [cut_dir / n for n in names]
        try:
            problems = writer.validate(copies)
        except Exception as exc:  # the check's point: a validator reports, it does not raise
            raise AssertionError(f"{name}: validate() raised {type(exc).__name__} ({exc}) on {rel} cut in half; "
                                 "return a problem naming the file instead") from exc
        require(bool(problems), f"{name}: validate() accepts {rel} cut in half ({len(data)} -> {len(data) // 2} "
                "bytes); check that the file is complete")
        leaf = Path(rel).name
        require(any(leaf in p for p in problems),
                f"{name}: validate() refuses {rel} cut in half but no problem names it: {problems}")
    return paths
