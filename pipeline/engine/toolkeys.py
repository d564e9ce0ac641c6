"""Our own tool code enters the key of every task whose build steps run it (Bazel's rule).

No hand-kept lists: the modules a task runs are the `-m pipeline...` names in its
build script (the recipe's steps plus what its builder generates), and each module's
import closure is read from the code itself (`ast`, imports at any depth, package
`__init__`s included). A module reached only through an import is keyed as surely as
the one named on the command line.

Self-test steps check an output but do not shape it: their tools are keyed in the self-test's
key (keys.py, `test_inputs`), never in the build's.

A module is keyed by its code as Python compiles it with docstrings stripped (what
`python -OO` runs): the AST without docstrings, comments or line numbers. Editing a
comment or a docstring (the package maps in the `__init__`s) rebuilds nothing; any
change to what the code does rebuilds every task that runs it.

Cheap on the no-op path: each file's import list is remembered in the stat cache,
so an unchanged file is neither read nor parsed again.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path

from .hashing import StatCache

ROOT_PACKAGE = "pipeline"
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # .../pipeline
ENGINE_FILES = ROOT_PACKAGE + "/engine/"  # the engine's own files, as import_closure names them
RUN_MODULE = re.compile(r"-m\s+[\"']?(" + ROOT_PACKAGE + r"(?:\.[A-Za-z_]\w*)*)")


def modules_run_by(script: str) -> set[str]:
    """Every `python -m pipeline[.x.y]` a script runs."""
    return set(RUN_MODULE.findall(script))


def layer_modules(layer: object) -> set[str]:
    """The module defining the project layer's class: its import closure is the layer's code."""
    return {type(layer).__module__}


def module_file(name: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The file of module `name` (a package's `__init__.py`, or `__main__.py` when run with -m)."""
    parts = name.split(".")[1:]
    base = package_dir.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(file: Path, module: str) -> list[str]:
    """Absolute names of every `pipeline...` module or name `file` imports, anywhere in it."""
    is_package = file.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(file.read_bytes(), filename=str(file))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base = ".".join(base_parts[: len(base_parts) - (node.level - 1)])
                origin = f"{base}.{node.module}" if node.module else base
            else:
                origin = node.module or ""
            found.append(origin)
            # `from pkg import name`: name may be a submodule
            found += [f"{origin}.{alias.name}" for alias in node.names if alias.name != "*"]
    return sorted({name for name in found if name == ROOT_PACKAGE or name.startswith(ROOT_PACKAGE + ".")})


def without_docstrings(tree: ast.AST) -> ast.AST:
    """The tree with every module, class and function docstring removed (as `-OO` drops them)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def code_digest(file: Path) -> str:
    """sha256 of what the module does: its AST without docstrings, comments and line numbers."""
    tree = without_docstrings(ast.parse(file.read_bytes(), filename=str(file)))
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def import_closure(entry_modules: set[str], stat_cache: StatCache, package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """Relative path -> sha256 of every file of ours that running `entry_modules` may execute."""
    seen: dict[str, Path] = {}
    pending = list(entry_modules)
    for name in list(entry_modules):
        if (package_dir.joinpath(*name.split(".")[1:]) / "__main__.py").is_file():
            pending.append(name + ".__main__")  # `python -m pkg` runs pkg/__main__.py
    while pending:
        name = pending.pop()
        # importing a.b.c executes a/__init__ and a/b/__init__ first
        parts = name.split(".")
        pending += [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) not in seen]
        if name in seen:
            continue
        file = module_file(name, package_dir)
        if file is None:  # a name imported from a module, not a module itself
            continue
        seen[name] = file
        imports = stat_cache.remember(str(file), lambda f=file, n=name: json.dumps(_imported_names(f, n)),
                                      kind="imports:")
        pending += [dep for dep in json.loads(imports) if dep not in seen]
    top = package_dir.parent
    return {
        file.relative_to(top).as_posix(): stat_cache.remember(str(file), lambda f=file: code_digest(f), kind="code:")
        for file in sorted(seen.values())
    }
