"""The README and the pages under docs/ link to what exists: results moved, renamed or not committed
break a link, and a link that points nowhere is a figure whose record a reader cannot find."""

from __future__ import annotations

import re

import pytest
from _helpers import REPO

PAGES = [
    REPO / "README.md",
    REPO / "ARCHITECTURE.md",
    REPO / "experiments" / "README.md",
    *sorted((REPO / "docs").rglob("*.md")),
]
LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)\s]+)\)")


def relative_links(text: str) -> list[str]:
    """The targets of the Markdown links in ``text`` that point into the repository (anchors dropped)."""
    return [target.split("#", 1)[0] for target in LINK.findall(text)]


def test_relative_links_are_found_by_hand():
    text = "see [a](results/x.json), [b](https://x.org/y), [c](#top), [d](../ARCH.md#layers) and [e](docs/)"
    assert relative_links(text) == ["results/x.json", "../ARCH.md", "docs/"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    missing = [t for t in relative_links(page.read_text()) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(REPO)}: links to what does not exist: {missing}"


def test_every_results_page_is_in_the_index():
    index = (REPO / "docs" / "results" / "README.md").read_text()
    pages = {p.name for p in (REPO / "docs" / "results").glob("*.md")} - {"README.md"}
    assert pages and pages <= set(relative_links(index))
