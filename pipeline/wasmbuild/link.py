"""Relink python.wasm with static C extensions registered as built-in modules.

WASI has no dlopen. build_cpython leaves a relink kit (`relink/`): Programs'
python.o, libpythonX.Y.a, Modules/config.c and the link line as data
(link.json). Each package output lists its extensions in extensions.json
(module, init symbol, archive). This writes a config.c whose inittab names each
extension by its full dotted name, compiles it, and links.

    python -m pipeline.wasmbuild.link --cpython build/build_cpython --package build/packages/markupsafe \
        --cc "clang-N --target=wasm32-wasi --sysroot=..." -o python.wasm
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import PipelineError, report_error
from .contracts import ExtensionList, RelinkKit

MARKER_DECLS = "/* -- ADDMODULE MARKER 1 -- */"
MARKER_ENTRIES = "/* -- ADDMODULE MARKER 2 -- */"


@dataclass(frozen=True)
class Extension:
    module: str
    init: str
    archive: Path
    package: str
    cxx: bool
    ldflags: tuple[str, ...] = ()  # the package recipe's build.ldflags, e.g. -lc-printscan-long-double


def read_extensions(package_dirs: list[Path]) -> list[Extension]:
    found: list[Extension] = []
    for folder in package_dirs:
        listing = folder / "extensions.json"
        if not listing.exists():  # a pure-Python package
            continue
        for item in ExtensionList.read(listing).extensions:
            found.append(Extension(item.module, item.init, folder / item.archive, folder.name,
                                   item.cxx, tuple(item.ldflags)))
    seen: dict[str, Extension] = {}
    for ext in found:
        if ext.module in seen:
            raise PipelineError(f"module {ext.module} is built by both {seen[ext.module].package} and {ext.package}")
        seen[ext.module] = ext
    return sorted(found, key=lambda e: e.module)


def defined_globals(archive: Path, nm: str) -> set[str]:
    """The strong global definitions. Weak ones (C++ inline functions and templates, e.g. libc++'s
    `__throw_length_error` in every module that can throw it) are meant to be merged: not clashes."""
    proc = subprocess.run([nm, "--defined-only", "--extern-only", "-P", str(archive)],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise PipelineError(f"{nm} failed on {archive}: {proc.stderr.strip()}")
    entries = (line.split() for line in proc.stdout.splitlines())
    return {fields[0] for fields in entries if len(fields) >= 2 and fields[1] not in "WwVv"}


def check_symbol_clashes(extensions: list[Extension], nm: str) -> None:
    """Two packages defining one global symbol would link by chance: refuse."""
    owner: dict[str, str] = {}
    clashes: list[str] = []
    for package in sorted({e.package for e in extensions}):
        symbols: set[str] = set()
        for ext in extensions:
            if ext.package == package:
                symbols |= defined_globals(ext.archive, nm)
        for symbol in sorted(symbols):
            if symbol in owner:
                clashes.append(f"{symbol} ({owner[symbol]} and {package})")
            owner[symbol] = package
    if clashes:
        raise PipelineError("global symbol clash between packages: " + ", ".join(clashes[:10]))


def make_config_c(template: str, extensions: list[Extension]) -> str:
    if MARKER_DECLS not in template or MARKER_ENTRIES not in template:
        raise PipelineError("config.c has no ADDMODULE markers")
    decls = "".join(f"extern PyObject* {e.init}(void);\n" for e in extensions)
    entries = "".join(f'    {{"{e.module}", {e.init}}},\n' for e in extensions)
    text = template.replace(MARKER_DECLS, MARKER_DECLS + "\n" + decls, 1)
    return text.replace(MARKER_ENTRIES, MARKER_ENTRIES + "\n" + entries, 1)


def run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise PipelineError(f"{what} failed ({proc.returncode}): {' '.join(argv[:6])} ...\n{proc.stderr[-3000:]}")


def kit_path(kit: Path, arg: str) -> str:
    """Archives and -L dirs in link.json are relative to the kit."""
    if arg.startswith("-L") and not arg.startswith("-L/"):
        return f"-L{kit / arg[2:]}"
    if arg.endswith(".a") and not arg.startswith("/"):
        return str(kit / arg)
    return arg


def link_python(
    cpython: Path, packages: list[Path], cc: str, output: Path, work: Path, nm: str,
    extra_ldflags: tuple[str, ...] = (),
) -> list[Extension]:
    kit = cpython / "relink"
    spec = RelinkKit.read(kit / "link.json")
    extensions = read_extensions(packages)
    check_symbol_clashes(extensions, nm)
    work.mkdir(parents=True, exist_ok=True)
    config_c = work / "config.c"
    config_c.write_text(make_config_c((kit / spec.config_c).read_text(), extensions))
    includes = [f"-I{cpython / inc}" for inc in spec.includes]
    compiler = shlex.split(cc)
    config_o = work / "config.o"
    run([*compiler, "-DPy_BUILD_CORE", *includes, "-c", str(config_c), "-o", str(config_o)], "compile config.c")
    # C++ extensions: the sysroot's C++ runtime (with exceptions; libunwind is inside libc++abi).
    cxx = ("-lc++", "-lc++abi") if any(e.cxx for e in extensions) else ()
    package_flags = dict.fromkeys(flag for e in extensions for flag in e.ldflags)
    objects = [str(kit / obj) for obj in spec.objects]
    libs = [kit_path(kit, lib) for lib in spec.libs]
    output.parent.mkdir(parents=True, exist_ok=True)
    argv = [*compiler, *spec.ldflags, *extra_ldflags, "-o", str(output), *objects, str(config_o),
            *(str(e.archive) for e in extensions), str(kit / spec.archive), *libs, *package_flags, *cxx]
    run(argv, "link python.wasm")
    return extensions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.wasmbuild.link", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpython", type=Path, required=True, help="build_cpython's output dir")
    parser.add_argument("--package", type=Path, action="append", default=[], help="a package output dir")
    parser.add_argument("--cc", required=True, help="the wasm C compiler command")
    parser.add_argument("--nm", required=True, help="the llvm-nm command")
    parser.add_argument("--work", type=Path, default=Path("link-work"))
    parser.add_argument("--report", type=Path, help="write the registered modules as JSON here")
    parser.add_argument("--ldflag", action="append", default=[], help="extra link flag, e.g. -Wl,--strip-debug")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        extensions = link_python(args.cpython, args.package, args.cc, args.output, args.work, args.nm,
                                 tuple(args.ldflag))
    except PipelineError as exc:
        return report_error(exc)
    if args.report:
        args.report.write_text(json.dumps([{"module": e.module, "init": e.init, "package": e.package}
                                           for e in extensions], indent=1) + "\n")
    for ext in extensions:
        print(f"built-in {ext.module} <- {ext.package} ({ext.init})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
