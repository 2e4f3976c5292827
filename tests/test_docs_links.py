"""Every relative link in README.md and docs/*.md names a file inside the repository.

Markdown links and images (``[text](path)``, ``![alt](path)``, ``[label]: path``) must point to a
file or folder that exists; a path in backticks that leaves the repository (``../shared/X.md``)
must name a file in the repository too, because a reader of the published repository cannot open it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs").glob("*/*.md"))]
INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
OUTSIDE_CODE_PATH = re.compile(r"`((?:\.\./|/)[^`\s]+\.md)`")


def links(text: str) -> list[str]:
    """The link targets of a Markdown text (fenced code blocks left out)."""
    body = FENCE.sub("", text)
    return INLINE.findall(body) + REFERENCE.findall(body)


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """``page: target (why)`` for each relative link that does not name a file in ``root``."""
    out = []
    text = page.read_text(encoding="utf-8")
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http:, https:, mailto: ... and anchors within the page
        path = target.split("#", 1)[0].split("?", 1)[0]
        resolved = (page.parent / path).resolve() if not path.startswith("/") else Path(path)
        if not resolved.is_relative_to(root):
            out.append(f"{page.relative_to(root)}: {target} (outside the repository)")
        elif not resolved.exists():
            out.append(f"{page.relative_to(root)}: {target} (no such file)")
    for path in OUTSIDE_CODE_PATH.findall(FENCE.sub("", text)):  # `../x.md` named in prose
        resolved = (page.parent / path).resolve()
        if not resolved.is_relative_to(root):
            out.append(f"{page.relative_to(root)}: `{path}` (outside the repository)")
        elif not resolved.exists():
            out.append(f"{page.relative_to(root)}: `{path}` (no such file)")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_name_files_in_the_repository(page: Path) -> None:
    assert broken_links(page) == []


def test_the_check_finds_a_missing_file_and_a_file_outside(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "real.md").write_text("# real\n")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/real.md) [anchor](#x) [web](https://example.com/a.md)\n"
                    "![gone](docs/missing.png) [up](../elsewhere.md)\n"
                    "[ref]: docs/nope.md\n"
                    "- `../shared/ARCHITECTURE.md`: the design\n"
                    "```\n[in code](not/checked.md)\n```\n")
    assert broken_links(page, tmp_path) == [
        "README.md: docs/missing.png (no such file)",
        "README.md: ../elsewhere.md (outside the repository)",
        "README.md: docs/nope.md (no such file)",
        "README.md: `../shared/ARCHITECTURE.md` (outside the repository)",
    ]
