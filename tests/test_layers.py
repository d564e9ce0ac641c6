"""The three layers stay apart: engine imports neither wasmbuild nor runtime; runtime does not import engine.

Read from the code with the same import scanner that keys our tools, so the check sees
imports at any depth (inside functions too), not only at the top of a file.
"""

from __future__ import annotations

import ast
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


# Words that name the wasm build or the runtime: an engine module whose code holds one in a
# string (a `-m pipeline.wasmbuild.x` step, a wasmtime version) depends on that layer as
# surely as an import would. Docstrings may say what a format is compatible with; they are
# left out, as are comments (ast does not see them).
FORBIDDEN_WORDS = {
    "engine": ("pipeline.wasmbuild", "pipeline.runtime", "wasmbuild", "wasm32", "wasm-ld", "wasmtime",
               "wasi", "emscripten", "emcompat", "pyodide"),
    "runtime": ("pipeline.engine", "pipeline.wasmbuild"),
}


def docstring_nodes(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def forbidden_strings(file: Path, words: tuple[str, ...]) -> list[str]:
    """`line: text` of every string literal in `file` (f-string parts too) naming one of `words`."""
    tree = ast.parse(file.read_text(), filename=str(file))
    docstrings = docstring_nodes(tree)
    return [f"{node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            and any(word in node.value.lower() for word in words)]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN_WORDS))
def test_layer_names_no_other_layer_in_strings(layer: str) -> None:
    offenders = {f"pipeline/{layer}/{file.name}": found for file in sorted((PACKAGE_DIR / layer).glob("*.py"))
                 if (found := forbidden_strings(file, FORBIDDEN_WORDS[layer]))}
    assert not offenders, f"string literals naming another layer: {offenders}"


def test_the_check_sees_a_forbidden_string(tmp_path: Path) -> None:
    """Negative control: a step string running a wasmbuild tool (in an f-string) is caught; a
    docstring that mentions Pyodide is not."""
    module = tmp_path / "builders.py"
    module.write_text('"""Recipes are a superset of Pyodide\'s."""\n'
                      'def steps(python: str) -> str:\n    return f"{python} -m pipeline.wasmbuild.emcompat collect"\n')
    found = forbidden_strings(module, FORBIDDEN_WORDS["engine"])
    assert len(found) == 1 and "pipeline.wasmbuild.emcompat" in found[0]
