"""Every picture a page shows is in the repository (or made by the site build), and every
committed picture is shown somewhere: a screenshot retaken under another name, or a plot
``make bench`` no longer writes, does not linger."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs

DOCS = Path(__file__).resolve().parents[2] / "docs"
#: Pictures ``docs/_hooks/generated.py`` makes at build time (tests/docs/test_site.py checks them).
GENERATED = {DOCS / "img" / "rotation-timeline.svg"}
PICTURE_FOLDERS = ("screenshots", "benchmarks")
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")


def _references() -> dict[Path, list[str]]:
    found: dict[Path, list[str]] = {}
    for page in sorted(DOCS.rglob("*.md")):
        for target in _IMAGE.findall(page.read_text(encoding="utf-8")):
            path = (page.parent / target).resolve()
            found.setdefault(path, []).append(str(page.relative_to(DOCS)))
    return found


def test_every_picture_shown_exists() -> None:
    missing = {
        str(path.relative_to(DOCS)): pages
        for path, pages in _references().items()
        if not path.is_file() and path not in GENERATED
    }
    assert missing == {}


def test_every_committed_picture_is_shown() -> None:
    shown = set(_references())
    committed = [p for folder in PICTURE_FOLDERS for p in sorted((DOCS / folder).glob("*.*"))]
    committed = [p for p in committed if p.suffix in (".png", ".svg")]
    assert len(committed) > 10
    assert [str(p.relative_to(DOCS)) for p in committed if p not in shown] == []
