"""Where the runtime finds what the wasm build made: the tasks it reads and the function store.

Task names of this project's recipes (recipes/runtime_root.yaml, recipes/codegen.yaml), read
by the runtime and the CLI; the engine knows tasks only as recipes name them (paths.py).
"""

from __future__ import annotations

from pathlib import Path

from .paths import Paths

RUNTIME_ROOT_TASK = "runtime_root"
CODEGEN_TASK = "codegen"


def runtime_root_tree(paths: Paths) -> Path:
    """The tree a runtime mounts as / (inside the runtime_root task's output)."""
    return paths.output_dir(RUNTIME_ROOT_TASK) / "root"


def codegen_dir(paths: Paths) -> Path:
    """Machine code for every .wasm of the runtime root (the codegen task's output)."""
    return paths.output_dir(CODEGEN_TASK)


def function_store(paths: Paths) -> Path:
    """Uploaded functions: user/function/function.py. Not a task output."""
    return paths.build / "function-store"
