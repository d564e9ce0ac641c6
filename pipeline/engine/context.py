"""What the engine hands a builder written in Python: $RECIPE_JSON, the build context.

The engine writes it (runner.write_recipe_json) and tools of the other layers read it
through this model: the engine imports no other layer, so the contract it writes
lives here. It holds the validated, rendered `Recipe` itself and where everything the
task builds against is; a project layer may write a subclass with its own fields
(layer.py: `Layer.build_context`), which its tools read.
"""

from __future__ import annotations

from ..files import canonical_json, sha256_text
from .contract import Contract
from .spec import Recipe


class BuildContext(Contract):
    """One task's rendered recipe and the outputs it builds against (absolute paths)."""

    task: str
    recipe: Recipe
    deps: dict[str, str]  # direct dependency task -> its output dir
    package_deps: list[str]  # output dirs of the direct dependencies that are package recipes
    source_sha256: str | None  # of the recipe's source; None when it has none


def source_digest(keyed_source: str | dict[str, dict[str, str]] | None) -> str | None:
    """The key's source entry as one sha256: a fetched source's own, or for a local path
    source one sha256 over its files' digests (provenance names one digest either way)."""
    if keyed_source is None or isinstance(keyed_source, str):
        return keyed_source
    return sha256_text(canonical_json(keyed_source))
