"""The toolchain task's outputs: what later recipes and build systems use of the LLVM toolchain.

    python -m pipeline.wasmbuild.toolchain --target wasm32-wasi --llvm-major MAJOR \\
        --sysroot build/malloc/sysroot --source-root . --templates toolchain --out "$OUT" --prefix "$PREFIX"

writes into --out, all relocatable (no absolute path of the checkout: a toolchain restored
from the cache into another checkout uses that checkout's sysroot):
    toolchain.json     the `Toolchain` (llvm.py) with its sysroot relative to
                       this file's folder (e.g. `../malloc/sysroot`)
    versions.txt       the compilers' own version lines
    bin/<target>-cc, bin/<target>-c++   one-executable wrappers (meson and cmake want one); they
                       find the sysroot and the checkout (for -ffile-prefix-map) from their own place
    <name>             every <name>.in of --templates with this target's tools filled in; paths are
                       relative to the file (meson's @DIRNAME@, cmake's CMAKE_CURRENT_LIST_DIR)
    config.site        --templates/config.site-<target>

The package builder fills the same meson cross file with its own compiler wrappers, by
absolute path in its work dir (`fill_template`, one code path).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import PipelineError, report_error
from ..files import write_atomic
from .llvm import Toolchain

TEMPLATE_SUFFIX = ".in"
PLACEHOLDER = re.compile(r"@[A-Z][A-Z_]*@")
MESON_CONSTANTS = frozenset({"@DIRNAME@", "@GLOBAL_SOURCE_ROOT@"})  # meson's own, left for meson
EXEC_MODE = 0o755


@dataclass(frozen=True)
class TemplatePaths:
    """Where a cross file says the wrappers and the sysroot are: absolute, or (`relative_to`
    the file's final folder) in the file format's own "from here" form."""

    bin_dir: Path
    sysroot: Path
    relative_to: Path | None = None

    def value(self, path: Path, template: Path) -> str:
        meson = template.name.endswith(".ini" + TEMPLATE_SUFFIX)
        if self.relative_to is None:
            return repr(str(path)) if meson else str(path)
        rel = os.path.relpath(path, self.relative_to)
        return f"'@DIRNAME@' / {rel!r}" if meson else "${CMAKE_CURRENT_LIST_DIR}/" + rel


def placeholders(tc: Toolchain, where: TemplatePaths, template: Path) -> dict[str, str]:
    """What the `@NAME@`s of a cross-file template stand for; @BIN@ holds `<target>-cc` and `-c++`.
    @BIN@ and @SYSROOT@ are path expressions of the file's format (quoted strings in meson)."""
    return {"@TARGET@": tc.target, "@SYSROOT@": where.value(where.sysroot, template),
            "@BIN@": where.value(where.bin_dir, template), "@AR@": tc.ar, "@NM@": tc.nm, "@RANLIB@": tc.ranlib,
            "@STRIP@": tc.strip}


def fill_template(template: Path, tc: Toolchain, where: TemplatePaths, dest: Path) -> Path:
    """A cross file from its template; a placeholder left unfilled is an error, not a silent bug."""
    text = template.read_text()
    for placeholder, value in placeholders(tc, where, template).items():
        text = text.replace(placeholder, value)
    leftover = sorted(set(PLACEHOLDER.findall(text)) - MESON_CONSTANTS)
    if leftover:
        raise PipelineError(f"{template}: unknown placeholder(s) {', '.join(leftover)}")
    write_atomic(dest, text)
    return dest


def write_exec_wrapper(path: Path, command: list[str], env: dict[str, str] | None = None) -> Path:
    """A /bin/sh script that runs `command` with its own arguments appended."""
    assignments = "".join(f"{name}={shlex.quote(value)} " for name, value in (env or {}).items())
    write_atomic(path, f"#!/bin/sh\n{assignments}exec {shlex.join(command)} \"$@\"\n", mode=EXEC_MODE)
    return path


# Stand-ins for the paths a wrapper finds at run time (shell words, substituted after quoting).
HERE_SYSROOT, HERE_ROOT = "/@wrapper-sysroot@", "/@wrapper-root@"


def compiler_wrappers(tc_target: str, llvm_major: str, bin_dir: Path, final_bin: Path, sysroot: Path,
                      source_root: Path) -> dict[str, Path]:
    """`<target>-cc` and `<target>-c++`: the target's compilers as single executables that find
    the sysroot and the checkout relative to where they are installed (`final_bin`). Complete
    compilers: the sysroot holds libc, the setjmp runtime and the C++ runtime, and the flags for
    setjmp/longjmp (cc) and C++ exceptions (c++) are theirs."""
    shape = Toolchain.derive(tc_target, llvm_major, HERE_SYSROOT, HERE_ROOT)
    finders = (
        'here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P)\n'
        f'root=$(CDPATH= cd -- "$here"/{shlex.quote(os.path.relpath(source_root, final_bin))} && pwd -P)\n'
    )
    sysroot_words = '"$here"/' + shlex.quote(os.path.relpath(sysroot, final_bin))
    wrappers = {}
    for tool, command in (("cc", shape.c_compiler()), ("c++", shape.cxx_compiler())):
        line = shlex.join(command)
        line = line.replace(HERE_SYSROOT, sysroot_words).replace(HERE_ROOT, '"$root"')
        path = bin_dir / f"{tc_target}-{tool}"
        write_atomic(path, f"#!/bin/sh\n# {tc_target} {tool}: the sysroot and the checkout are found from this"
                           f" script's place\n{finders}exec {line} \"$@\"\n", mode=EXEC_MODE)
        wrappers[tool] = path
    return wrappers


def tool_versions(tc: Toolchain) -> str:
    """`--version` of each fingerprinted tool, as they print it."""
    found = []
    for tool in tc.fingerprint_tools.split():
        try:
            proc = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise PipelineError(f"{tool} --version failed: {exc} (is the toolchain installed?)") from None
        found.append(proc.stdout)
    return "".join(found)


def install(target: str, llvm_major: str, sysroot: Path, source_root: Path, templates: Path, out: Path,
            prefix: Path) -> list[Path]:
    """Every output of the toolchain task into `out`; paths inside them are relative to `prefix`,
    the final place, so the output holds no absolute path of the checkout."""
    portable = Toolchain.derive(target, llvm_major, os.path.relpath(sysroot, prefix))
    written = [portable.write(out / "toolchain.json"), write_atomic_text(out / "versions.txt", tool_versions(portable))]
    written += compiler_wrappers(target, llvm_major, out / "bin", prefix / "bin", sysroot, source_root).values()
    where = TemplatePaths(bin_dir=prefix / "bin", sysroot=sysroot, relative_to=prefix)
    for template in sorted(templates.glob(f"*{TEMPLATE_SUFFIX}")):
        written.append(fill_template(template, portable, where, out / template.name.removesuffix(TEMPLATE_SUFFIX)))
    site = templates / f"config.site-{target}"
    if not site.is_file():
        raise PipelineError(f"{site}: no config.site for target {target}")
    shutil.copyfile(site, out / "config.site")
    written.append(out / "config.site")
    return written


def write_atomic_text(path: Path, text: str) -> Path:
    write_atomic(path, text)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.wasmbuild.toolchain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="the target triple, e.g. wasm32-wasi")
    parser.add_argument("--llvm-major", required=True, help="the major version Debian's tool names carry")
    parser.add_argument("--sysroot", type=Path, required=True, help="the target's sysroot (may not exist yet)")
    parser.add_argument("--source-root", type=Path, required=True,
                        help="the checkout: the wrappers map it to . in what they compile (-ffile-prefix-map)")
    parser.add_argument("--templates", type=Path, required=True, help="the folder of *.in cross-file templates")
    parser.add_argument("--out", type=Path, required=True, help="where to write (the task's staging dir)")
    parser.add_argument("--prefix", type=Path, required=True, help="where --out will finally be")
    args = parser.parse_args(argv)
    try:
        written = install(args.target, args.llvm_major, args.sysroot.absolute(), args.source_root.absolute(),
                          args.templates, args.out, args.prefix.absolute())
    except PipelineError as exc:
        return report_error(exc)
    print("\n".join(str(path.relative_to(args.out)) for path in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
