"""README tables that are generated from committed results match them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_recipe_table_is_the_one_generated_from_its_summary():
    sys.path.insert(0, str(REPO / "experiments" / "gpu"))
    try:
        from summarise_recipes import table
    finally:
        sys.path.pop(0)
    summary = json.loads((REPO / "results/teacher-recipes-2026-11-27/summary.json").read_text())
    assert table(summary) in (REPO / "README.md").read_text()
