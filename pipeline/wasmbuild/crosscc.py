"""Compiler and linker stand-ins that turn a host extension build into wasm32 archives.

Build backends (setuptools, ...) run under the native build-python and believe
they build shared libraries for it. With CC/CXX/LDSHARED pointing here:
- `cc`/`c++` drop host-only flags (-fPIC: no dylink here) and run the wasm compiler,
  logging each compile so it can be replayed;
- `cython` runs the real Cython from the checkout's root, so that the source paths it
  writes into its C (tracebacks, code objects) are checkout-relative, not absolute;
- `ldshared` writes a static archive where the `.so` was expected. WASI has no
  dlopen: the `link` step puts these archives into python.wasm as built-ins.
  Its init symbol is renamed to a name unique to the dotted module name (two
  packages may both have `_speedups`) by recompiling the one object defining it.

Configuration is one JSON environment variable the package builder sets
($PIPELINE_CROSS, `CrossSettings`); every compile and archive is appended to its log.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ..errors import PipelineError, report_error
from .crossargs import CompileEvent, CrossSettings, ExtensionEvent, append_event, read_events
from .wasmobj import localize_globals

DROP_FLAGS = frozenset({"-fPIC", "-fpic", "-pthread", "-shared", "-fno-semantic-interposition"})
HOST_PATH = re.compile(r"^-[IL](/usr/(local/)?(include|lib)|/usr/lib/x86_64-linux-gnu)")
SO_SUFFIX = re.compile(r"(\.cpython-[^.]+|\.abi3)?\.so$")


def init_symbol(dotted: str) -> str:
    """PyInit symbol for a built-in module; unique per dotted name."""
    return "PyInit_" + dotted.replace(".", "__")


def module_name(so_path: str) -> str:
    """`build/lib.linux-x86_64-cpython-313/markupsafe/_speedups.cpython-313-...so` -> dotted."""
    parts = Path(so_path).parts
    start = next((i + 1 for i, part in enumerate(parts) if part.startswith("lib.") or part == "lib"), 0)
    rel = "/".join(parts[start:])
    return SO_SUFFIX.sub("", rel).replace("/", ".")


def keep(arg: str, extra_drop: set[str]) -> bool:
    return arg not in DROP_FLAGS and arg not in extra_drop and not HOST_PATH.match(arg)


def compiler(settings: CrossSettings, lang: str) -> list[str]:
    if lang == "c++":
        return [*settings.cxx, *settings.cxxflags]
    return [*settings.cc, *settings.cflags]


def run(argv: list[str]) -> int:
    return subprocess.run(argv, check=False).returncode


CXX_SOURCES = (".cpp", ".cc", ".cxx", ".C", ".c++")
RUNTIME_LIBRARIES = frozenset({"c", "m", "c++", "c++abi", "unwind"})


def compile_step(settings: CrossSettings, lang: str, args: list[str]) -> int:
    if any(arg.endswith(CXX_SOURCES) for arg in args):
        lang = "c++"  # some backends compile C++ sources with CC: give them libc++ anyway
    host_include = {f"-I{p}" for p in settings.drop_includes}
    argv = compiler(settings, lang) + [a for a in args if keep(a, host_include)]
    if "-c" in args and "-o" in args:
        append_event(Path(settings.log), CompileEvent(lang="c++" if lang == "c++" else "c", cwd=os.getcwd(),
                                                      argv=tuple(argv),
                                                      output=os.path.abspath(args[args.index("-o") + 1])))
    return run(argv)


def defines_symbol(nm: str, obj: str, symbol: str) -> bool:
    out = subprocess.run([nm, "--defined-only", "--extern-only", "-j", obj], capture_output=True, text=True,
                         check=False).stdout
    return symbol in out.split()


def compiles_by_output(log: Path) -> dict[str, CompileEvent]:
    return {event.output: event for event in read_events(log) if isinstance(event, CompileEvent)}


def link_step(settings: CrossSettings, args: list[str], linker: str = "ldshared") -> int:
    """Archive the objects instead of linking a shared library.

    The module's objects and the static libraries it links (meson's helper
    libraries) become one relocatable object in a one-member archive.
    """
    given = args[args.index("-o") + 1]
    output = os.path.abspath(given)
    objects = [a for a in args if a.endswith((".o", ".obj")) and os.path.exists(a)]
    static_libs = [a for a in args if a.endswith(".a") and os.path.exists(a)]
    # -lNAME found as a static archive in the link's -L dirs or the recipe's: part of the module
    # (its private copy, as a shared library would link it); others are left to the final link.
    search = [a[2:] for a in args if a.startswith("-L") and len(a) > 2] + list(settings.library_dirs)
    libs = []
    for flag in (a for a in args if a.startswith("-l")):
        # The sysroot's runtimes stay out of every module: one copy, in the final link (a private
        # copy of the exception tags would never catch what another module throws).
        archive = None if flag[2:] in RUNTIME_LIBRARIES else next((os.path.join(d, f"lib{flag[2:]}.a") for d in search
                        if os.path.isfile(os.path.join(d, f"lib{flag[2:]}.a"))), None)
        if archive is None:
            libs.append(flag)
        else:
            static_libs.append(archive)
    # Relative to the build's working dir (setuptools: build/lib.*/pkg/..., meson: pkg/...).
    dotted = module_name(given)
    short = "PyInit_" + dotted.rsplit(".", 1)[-1]
    compiles = compiles_by_output(Path(settings.log))
    for obj in objects:
        if defines_symbol(settings.nm, obj, short):
            event = compiles.get(os.path.abspath(obj))
            if event is None:
                print(f"crosscc: cannot rename {short}: no logged compile for {obj}", file=sys.stderr)
                return 1
            code = subprocess.run([*event.argv, f"-D{short}={init_symbol(dotted)}"], cwd=event.cwd,
                                  check=False).returncode
            if code:
                return code
    os.makedirs(os.path.dirname(output), exist_ok=True)
    if os.path.exists(output):
        os.unlink(output)
    # One object per module with only its init function global: a namespace of its
    # own, as a shared library would have (see pipeline.wasmobj).
    merged = f"{output}.o"
    try:
        code = run([settings.ld, "-r", "-o", merged, *objects, *static_libs])
        if code:
            return code
        localize_globals(Path(merged), {init_symbol(dotted)})
        code = run([settings.ar, "rcs", output, merged])
    finally:
        if os.path.exists(merged):
            os.unlink(merged)
    # Linked by the C++ driver (meson does so when any linked-in part is C++), or C++ objects.
    uses_cxx = linker == "c++" or any(
        (event := compiles.get(os.path.abspath(o))) is not None and event.lang == "c++" for o in objects)
    append_event(Path(settings.log), ExtensionEvent(module=dotted, init=init_symbol(dotted), output=output,
                                                    libs=tuple(libs), cxx=uses_cxx or "-lstdc++" in libs))
    return code


OUTER_PYTHONPATH = "PIPELINE_OUTER_PYTHONPATH"  # the caller's PYTHONPATH, kept aside by the cython stand-in
CYTHON_PATH_OPTIONS = frozenset({"-o", "--output-file", "-I", "--include-dir"})


def is_stand_in(program: Path) -> bool:
    with open(program, "rb") as handle:
        return b"pipeline.wasmbuild.crosscc" in handle.read(4096)


def cython_step(args: list[str], root: str) -> int:
    """Cython names a source by its path relative to Cython's working directory when the source
    lies under it, else by its absolute path: run it from the checkout, with every path argument
    made absolute first (the -ffile-prefix-map of Cython)."""
    here = os.getcwd()
    absolute: list[str] = []
    path_follows = False
    for arg in args:
        if path_follows or (not arg.startswith("-") and os.path.exists(arg)):
            arg = os.path.join(here, arg)
        elif arg.startswith("-I") and len(arg) > 2:
            arg = "-I" + os.path.join(here, arg[2:])
        path_follows = arg in CYTHON_PATH_OPTIONS
        absolute.append(arg)
    real = next((str(candidate) for folder in os.environ.get("PATH", "").split(os.pathsep) if folder
                 for candidate in [Path(folder) / "cython"]
                 if os.access(candidate, os.X_OK) and not is_stand_in(candidate)), None)
    if real is None:
        print("crosscc: no cython on PATH besides this stand-in", file=sys.stderr)
        return 1
    env = dict(os.environ)
    env["PYTHONPATH"] = env.pop(OUTER_PYTHONPATH, "")
    if not env["PYTHONPATH"]:
        del env["PYTHONPATH"]
    return subprocess.run([real, *absolute], cwd=root, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("cc", "c++", "ldshared", "cython"):
        print("usage: python -m pipeline.wasmbuild.crosscc cc|c++|ldshared|cython ARGS...", file=sys.stderr)
        return 2
    mode, rest = args[0], args[1:]
    if mode == "cython":
        return cython_step(rest, os.environ["PROJECT_ROOT"])
    try:
        settings = CrossSettings.from_env()
    except PipelineError as exc:
        return report_error(exc)
    # Some backends link C++ extensions with CXX itself: a compiler asked for a .so links too.
    links = mode == "ldshared" or ("-c" not in rest and "-o" in rest and SO_SUFFIX.search(rest[rest.index("-o") + 1]))
    return link_step(settings, rest, mode) if links else compile_step(settings, mode, rest)


if __name__ == "__main__":
    raise SystemExit(main())
