"""The three layers stay apart: engine imports neither wasmbuild nor runtime; runtime does not import engine.

Read from the code with the same import scanner that keys our tools, so the check sees
imports at any depth (inside functions too), not only at the top of a file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.engine.hashing import StatCache
from pipeline.engine.toolkeys import PACKAGE_DIR, import_closure

FORBIDDEN = {
    "engine": ("pipeline/wasmbuild/", "pipeline/runtime/"),
    "runtime": ("pipeline/engine/", "pipeline/wasmbuild/"),
}


def modules_of(layer: str) -> list[str]:
    return sorted(f"pipeline.{layer}.{f.stem}" for f in (PACKAGE_DIR / layer).glob("*.py") if f.stem != "__init__")


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    modules = modules_of(layer)
    assert modules, f"no modules found for layer {layer}"
    for module in modules:
        reached = import_closure({module}, StatCache(None))
        bad = [path for path in reached if path.startswith(FORBIDDEN[layer])]
        assert not bad, f"{module} reaches {bad}"


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """Negative control: a runtime module that imports the engine (in a function) is caught."""
    package = tmp_path / "pipeline"
    for folder in ("", "engine", "runtime"):
        (package / folder).mkdir(parents=True, exist_ok=True)
        (package / folder / "__init__.py").write_text("")
    (package / "engine" / "keys.py").write_text("X = 1\n")
    (package / "runtime" / "wasm.py").write_text("def f():\n    from ..engine import keys\n    return keys.X\n")
    reached = import_closure({"pipeline.runtime.wasm"}, StatCache(None), package)
    assert "pipeline/engine/keys.py" in reached
