"""The wasm build's own pipeline.yaml keys, validated like the engine's (one line per error).

The engine validates its keys (engine/config.py: `ProjectConfig`) and hands every other key
to the project layer (layer.py), which validates them with this model. Templates see both
in `config` (e.g. `config.malloc`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator, model_validator

from ..engine.config import version_major
from ..engine.spec import Spec
from ..preload import HASH_SEED_MAX, MODULE_NAME

SIZE = re.compile(r"[0-9]+(\.[0-9]+)?[kMGT]")


class WasmSettings(Spec):
    target: str = "wasm32-wasi"
    malloc: Literal["dlmalloc", "mimalloc"] = "dlmalloc"
    # numpy's BLAS/LAPACK: OpenBLAS (recipes/openblas.yaml) with wasm SIMD, or none
    # (numpy's bundled lapack_lite, no SIMD: the earlier build, kept for measurement).
    numpy_blas: Literal["openblas", "none"] = "openblas"
    # The engine's `versions` (read here too): `llvm` is the one LLVM version, Debian's
    # (`1:22.1.8-1~deb12u1`); tool names carry its major (`clang-22`), pins name it whole.
    versions: dict[str, str] = {}
    toolchain_recipe: str | None = "toolchain"  # whose compilers are fingerprinted
    sysroot_recipe: str | None = "cxxrt"  # its output holds the final sysroot
    cpython_recipe: str = "build_cpython"  # every python-package recipe builds against it
    build_python_recipe: str = "build_python"  # ...with this native CPython of the same version
    codegen_target: str | None = None  # None: this machine
    runtime_packages: list[str] = []
    # Modules imported into the pre-initialized interpreter snapshot (besides pyfaasm), in order.
    snapshot_preload: list[str] = []
    # The snapshot's frozen hash secret (PYTHONHASHSEED, 1..HASH_SEED_MAX). None: derived from
    # python.wasm's sha256, so reproducible per build but not one constant for every build.
    snapshot_hash_seed: int | None = None
    # The compile cache's bound (ccache's max_size: a number with k, M, G or T; compilecache.py).
    compile_cache_size: str = "5G"

    @field_validator("snapshot_preload")
    @classmethod
    def _module_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not MODULE_NAME.match(name):
                raise ValueError(f"{name!r} is not a module name (dotted identifiers, e.g. numpy or xml.dom)")
        if len(set(names)) != len(names):
            raise ValueError("lists a module twice")
        return names

    @field_validator("snapshot_hash_seed")
    @classmethod
    def _hash_seed(cls, seed: int | None) -> int | None:
        if seed is not None and not 1 <= seed <= HASH_SEED_MAX:
            raise ValueError(f"must be 1..{HASH_SEED_MAX} (0 would turn hash randomization off)")
        return seed

    @field_validator("compile_cache_size")
    @classmethod
    def _size(cls, value: str) -> str:
        if not SIZE.fullmatch(value):
            raise ValueError(f"{value!r} is not a size (a number with k, M, G or T, e.g. 5G)")
        return value

    @model_validator(mode="after")
    def _llvm_pinned(self) -> WasmSettings:
        if self.toolchain_recipe is not None and "llvm" not in self.versions:
            raise ValueError("versions: needs llvm, the Debian version of the LLVM toolchain (e.g. 1:22.1.8-1~deb12u1)")
        return self

    @property
    def llvm_major(self) -> str:
        """`22` for `1:22.1.8-1~deb12u1`; empty without a pinned LLVM (unversioned tool names)."""
        return version_major(self.versions["llvm"]) if "llvm" in self.versions else ""
