"""$RECIPE_JSON for the wasm builders: the engine's build context plus the toolchain and the CPython kit.

Written by the engine through the wasm layer (layer.py: `WasmBuild.build_context`), read by
pypackage and emcompat.
"""

from __future__ import annotations

from ..engine.context import BuildContext
from .llvm import Toolchain


class WasmBuildContext(BuildContext):
    """One task's build context, with what a package build builds against."""

    cpython: str  # settings' cpython-recipe's output dir
    build_python: str  # settings' build-python-recipe's output dir
    toolchain: Toolchain
