"""What users build on does not change by accident: the recipe schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO

GOLDEN = Path(__file__).resolve().parent / "golden"


def pipeline_cli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout


def test_recipe_schema_is_byte_identical_to_the_recorded_one() -> None:
    """Recipes written against the recorded schema still validate; regenerate it only on purpose."""
    assert pipeline_cli("schema") == (GOLDEN / "recipe.schema.json").read_text()

