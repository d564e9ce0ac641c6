"""The LLVM cross toolchain for the target, as one model (`tc` in templates).

Derived from pipeline.yaml's `target` and `llvm-version` in one place (`Toolchain.derive`):
the templates (through the wasm layer, layer.py), the fingerprinted tools, the build
context, and the toolchain task's toolchain.json (written by toolchain.py) all come from
here. Kept apart from the recipe models so the tools that use it stay small to key.
"""

from __future__ import annotations

from pathlib import Path

from ..engine.contract import Contract


class Toolchain(Contract):
    """An LLVM cross toolchain for one target, as Debian installs it (`clang-N`, `llvm-ar-N`, ...)."""

    target: str
    llvm_version: str
    cc: str
    cxx: str
    cpp: str
    ar: str
    ranlib: str
    nm: str
    ld: str
    strip: str
    clang: str
    sysroot: str
    # Debian's per-target libc++ (libc++-N-dev-<target>): C++ compiles and links use these.
    libcxx_include: str
    libcxx_lib: str
    fingerprint_tools: str  # their version strings enter every downstream key

    @classmethod
    def derive(cls, target: str, llvm_version: str, sysroot: Path | str, source_root: Path | str = "") -> Toolchain:
        """`source_root`: the checkout; compiles map it to `.` in `__FILE__`, debug info and
        macros (-ffile-prefix-map), so no output holds the checkout's path."""
        v = llvm_version
        base = f"--target={target} --sysroot={sysroot}"
        if source_root:
            base += f" -ffile-prefix-map={source_root}=."
        return cls(
            target=target,
            llvm_version=v,
            cc=f"clang-{v} {base}",
            cxx=f"clang++-{v} {base}",
            cpp=f"clang-cpp-{v} {base}",
            ar=f"llvm-ar-{v}",
            ranlib=f"llvm-ranlib-{v}",
            nm=f"llvm-nm-{v}",
            ld=f"wasm-ld-{v}",
            strip=f"llvm-strip-{v}",
            clang=f"clang-{v}",
            sysroot=str(sysroot),
            libcxx_include=f"/usr/lib/llvm-{v}/include/{target}/c++/v1",
            libcxx_lib=f"/usr/lib/llvm-{v}/lib/{target}",
            fingerprint_tools=f"clang-{v} wasm-ld-{v} llvm-ar-{v}",
        )

    def template_vars(self) -> dict[str, str]:
        """`tc` in templates: every tool, without the file's schema version."""
        return self.model_dump(exclude={"schema_version"})
