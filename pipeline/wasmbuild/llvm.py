"""The LLVM cross toolchain for the target, as one model (`tc` in templates).

Derived from pipeline.yaml's `target` and `versions.llvm` in one place (`Toolchain.derive`):
the templates (through the wasm layer, layer.py), the fingerprinted tools, the build
context, and the toolchain task's toolchain.json (written by toolchain.py) all come from
here. Kept apart from the recipe models so the tools that use it stay small to key.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from ..engine.contract import Contract

# -wasm-use-legacy-eh=false only with one of -wasm-enable-sjlj or -fwasm-exceptions: alone,
# clang 22's backend aborts ("-exception-model=wasm only allowed with at least one of ...").
SJLJ_FLAGS = "-mllvm -wasm-enable-sjlj -mllvm -wasm-use-legacy-eh=false"


class Toolchain(Contract):
    """An LLVM cross toolchain for one target, as Debian installs it (`clang-N`, `llvm-ar-N`, ...)."""

    target: str
    target_flags: str  # what selects the target in a command of one's own: --target and its quirks
    llvm_major: str  # Debian's tool names carry it: clang-22
    cc: str
    cxx: str
    cpp: str
    ar: str
    ranlib: str
    nm: str
    ld: str
    strip: str
    clang: str
    clangxx: str
    sysroot: str
    fingerprint_tools: str  # their version strings enter every downstream key
    # setjmp/longjmp lowered to the exception-handling proposal: the standard encoding
    # (exnref), which wasmtime runs; LLVM's default is still the legacy one, which it refuses.
    sjlj_flags: str
    # C++ exceptions too (C++ code may call setjmp as well, so both lowerings come together).
    exception_flags: str

    @classmethod
    def derive(cls, target: str, llvm_major: str, sysroot: Path | str, source_root: Path | str = "") -> Toolchain:
        """`source_root`: the checkout; compiles map it to `.` in `__FILE__`, debug info and
        macros (-ffile-prefix-map), so no output holds the checkout's path."""
        v = llvm_major
        n = f"-{v}" if v else ""  # no pinned LLVM (a fixture without a toolchain): the PATH's names
        # clang 22 calls the wasm32-wasi triple deprecated (for wasm32-wasip1) on every compile and
        # link, an error under -Werror (wasi-libc's build); the sysroot's lib/wasm32-wasi layout
        # and CPython's --host keep the old name.
        target_flags = f"--target={target} -Wno-deprecated"
        base = f"{target_flags} --sysroot={sysroot}"
        if source_root:
            base += f" -ffile-prefix-map={source_root}=."
        return cls(
            target=target,
            target_flags=target_flags,
            llvm_major=v,
            cc=f"clang{n} {base}",
            cxx=f"clang++{n} {base}",
            cpp=f"clang-cpp{n} {base}",
            ar=f"llvm-ar{n}",
            ranlib=f"llvm-ranlib{n}",
            nm=f"llvm-nm{n}",
            ld=f"wasm-ld{n}",
            strip=f"llvm-strip{n}",
            clang=f"clang{n}",
            clangxx=f"clang++{n}",
            sysroot=str(sysroot),
            fingerprint_tools=f"clang{n} wasm-ld{n} llvm-ar{n}",
            sjlj_flags=SJLJ_FLAGS,
            exception_flags=f"-fwasm-exceptions {SJLJ_FLAGS}",
        )

    def c_compiler(self, exceptions: bool = True) -> list[str]:
        """The C compiler command packages and libraries build with: setjmp/longjmp work."""
        return [*shlex.split(self.cc), *(shlex.split(self.sjlj_flags) if exceptions else [])]

    def cxx_compiler(self, exceptions: bool = True) -> list[str]:
        """The C++ compiler command: exceptions on (the sysroot's C++ runtime has them), or off."""
        return [*shlex.split(self.cxx), *(shlex.split(self.exception_flags) if exceptions else ["-fno-exceptions"])]

    def compilers(self) -> tuple[str, str]:
        """The C and C++ compilers' command names (what the compile cache stands in for)."""
        return self.clang, self.clangxx

    def template_vars(self) -> dict[str, str]:
        """`tc` in templates: every tool, without the file's schema version."""
        return self.model_dump(exclude={"schema_version"})
