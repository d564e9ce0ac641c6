"""The python-package builder: a PyPI sdist (or pure wheel) -> site-packages + static extensions.

    build: wheel from the sdist with the native build-python (same CPython
           version as the wasm one), compilers swapped for pipeline.crosscc so C
           extensions come out as wasm32 archives; installed with `installer`
           into $OUT/site-packages; archives moved to $OUT/static and listed in
           $OUT/extensions.json; provenance in $OUT/package.json.

Its self-test is pipeline.wasmbuild.importtest, a module of its own: what only the test runs
(the linker driver, the guest runner) is then outside this build's key (engine/keys.py).

Run by the builder's generated step; reads $RECIPE_JSON, $SRC, $OUT, $WORK.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from ..errors import PipelineError, report_error
from ..files import write_atomic
from .context import WasmBuildContext
from .contracts import BuildInfo, Extension, ExtensionList, Provenance
from .crossargs import CrossSettings, ExtensionEvent, read_events
from .crosscc import OUTER_PYTHONPATH, module_name
from .relocate import TOKEN, relocate_wheel
from .toolchain import TemplatePaths, fill_template, write_exec_wrapper

ARCHIVE_MAGIC = b"!<arch>\n"
# The checkout holding our `pipeline` package: the compiler wrappers put it on PYTHONPATH.
CODE_ROOT = Path(__file__).resolve().parents[2]


def load_context() -> WasmBuildContext:
    return WasmBuildContext.read(Path(os.environ["RECIPE_JSON"]))


def build_info(ctx: WasmBuildContext) -> BuildInfo:
    return BuildInfo.read(Path(ctx.cpython) / "build-info.json")


def write_wrappers(bin_dir: Path, target: str) -> dict[str, str]:
    """Tiny scripts for CC/CXX/LDSHARED: build frontends drop PYTHONPATH, so set it here.

    Named like the toolchain's own wrappers (`<target>-cc`), so the toolchain's
    cross-file template can point at them.
    """
    wrappers = {
        mode: str(write_exec_wrapper(bin_dir / f"{target}-{mode}",
                                     [sys.executable, "-m", "pipeline.wasmbuild.crosscc", mode],
                                     {"PYTHONPATH": str(CODE_ROOT)}))
        for mode in ("cc", "c++", "ldshared")
    }
    # Cython is Python: the real one needs the build environment's PYTHONPATH (pip's isolation
    # works through it), which the stand-in keeps aside for it.
    cython = bin_dir / "cython"
    write_atomic(cython, f"#!/bin/sh\n{OUTER_PYTHONPATH}=\"$PYTHONPATH\" PYTHONPATH={shlex.quote(str(CODE_ROOT))} "
                         f"exec {shlex.quote(sys.executable)} -m pipeline.wasmbuild.crosscc cython \"$@\"\n",
                 mode=0o755)
    return {**wrappers, "cython": str(cython)}


def meson_cross_template() -> Path:
    """The toolchain's meson cross-file template (an input of the toolchain task, so keyed)."""
    return Path(os.environ["PROJECT_ROOT"]) / "toolchain" / "meson-cross.ini.in"


def uses_meson(src: Path) -> bool:
    pyproject = src / "pyproject.toml"
    if not pyproject.exists():
        return False
    backend = tomllib.loads(pyproject.read_text()).get("build-system", {}).get("build-backend", "")
    return backend == "mesonpy"


MAKE_VARIABLE = re.compile(r"\$\((\w+)\)|\$\{(\w+)\}")


def expand_variables(flags: str) -> list[str]:
    """A recipe's cflags/ldflags as arguments, `$(NAME)` and `${NAME}` taken from the
    environment (Pyodide writes `-I$(WASM_LIBRARY_DIR)/include`); an unset one is an error."""
    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name not in os.environ:
            raise PipelineError(f"build flags name ${name}, which is not set")
        return os.environ[name]

    return shlex.split(MAKE_VARIABLE.sub(value, flags))


def split_ldflags(ldflags: list[str]) -> tuple[list[str], list[str]]:
    """(-L dirs, what the final link of python.wasm still needs): libraries found as static
    archives in those dirs join each module at build time, so only the rest is left."""
    dirs = [flag[2:] for flag in ldflags if flag.startswith("-L")]
    rest = [flag for flag in ldflags if not flag.startswith("-L")
            and not (flag.startswith("-l") and any(Path(d, f"lib{flag[2:]}.a").is_file() for d in dirs))]
    return dirs, rest


def cross_settings(ctx: WasmBuildContext, info: BuildInfo, log: Path) -> CrossSettings:
    tc, build = ctx.toolchain, ctx.recipe.build
    include = Path(ctx.cpython) / info.include
    library_dirs, _ = split_ldflags(expand_variables(build.ldflags))
    return CrossSettings(
        cc=tuple(tc.c_compiler(build.exceptions)),
        # CPython's WASI pthread stubs header says `restrict`, which C++ spells `__restrict`.
        cxx=(*tc.cxx_compiler(build.exceptions), "-Drestrict=__restrict"),
        cflags=("-O2", "-DNDEBUG", f"-I{include}", *expand_variables(build.cflags)),
        cxxflags=("-O2", "-DNDEBUG", f"-I{include}", *expand_variables(build.cxxflags)),
        ar=tc.ar, nm=tc.nm, ld=tc.ld, log=str(log),
        # The build-python's own headers: x86_64 pyconfig.h must never reach a wasm compile.
        drop_includes=(str(Path(ctx.build_python) / "include" / Path(info.include).name),),
        library_dirs=tuple(library_dirs),
    )


def cross_env(ctx: WasmBuildContext, info: BuildInfo, work: Path, log: Path) -> dict[str, str]:
    tc = ctx.toolchain
    wrapper = write_wrappers(work / "bin", tc.target)
    env = dict(os.environ)
    env.update(
        {
            "CC": wrapper["cc"], "CXX": wrapper["c++"],
            "LDSHARED": wrapper["ldshared"], "LDCXXSHARED": wrapper["ldshared"],
            # Extension builds that may fall back to pure Python must fail instead.
            "CIBUILDWHEEL": "1",
            "AR": tc.ar, "RANLIB": tc.ranlib,
            "CFLAGS": "", "CXXFLAGS": "", "LDFLAGS": "", "CPPFLAGS": "",
            **cross_settings(ctx, info, log).to_env(),
        }
    )
    constraints = ctx.recipe.requirements.constraint
    if constraints:
        # Pins for the isolated build environment's requirements (Cython, meson-python, ...).
        pins = work / "build-constraints.txt"
        pins.write_text("".join(f"{line}\n" for line in constraints))
        env["PIP_CONSTRAINT"] = str(pins)
    return env


def meson_cross_file(ctx: WasmBuildContext, work: Path) -> Path:
    """The toolchain's meson cross file, naming this build's compiler stand-ins in `work/bin`."""
    where = TemplatePaths(bin_dir=work / "bin", sysroot=Path(ctx.toolchain.sysroot))
    return fill_template(meson_cross_template(), ctx.toolchain, where, work / "meson-cross.ini")


def meson_cython_file(work: Path) -> Path:
    """A native file (Cython runs on the build machine, so meson looks for it there): Cython
    through crosscc's stand-in, which runs it from the checkout, so the source paths Cython
    writes into its C are checkout-relative."""
    write_atomic(work / "meson-cython.ini", f"[binaries]\ncython = [{str(work / 'bin' / 'cython')!r}]\n")
    return work / "meson-cython.ini"


def build_wheel(src: Path, work: Path, ctx: WasmBuildContext, info: BuildInfo, log: Path) -> Path:
    dist = work / "dist"
    interpreter = Path(ctx.build_python) / "bin" / info.interpreter
    argv = [str(interpreter), "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
            "-w", str(dist), "."]
    settings = shlex.split(ctx.recipe.build.backend_flags)
    if uses_meson(src):
        # meson-python: cross-compile with the toolchain's cross file (recipes may add
        # their own after it) in a known build dir, so module paths are predictable.
        cross, cython = meson_cross_file(ctx, work), meson_cython_file(work)
        settings[:0] = [f"setup-args=--cross-file={cross}", f"setup-args=--native-file={cython}",
                        f"build-dir={work / 'meson-build'}"]
    argv[5:5] = [f"--config-settings={flag}" for flag in settings]
    print("+", " ".join(argv), flush=True)
    proc = subprocess.run(argv, cwd=src, env=cross_env(ctx, info, work, log), check=False)
    if proc.returncode:
        raise PipelineError(f"wheel build failed ({proc.returncode})")
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != 1:
        raise PipelineError(f"expected one wheel, found {[w.name for w in wheels]}")
    return wheels[0]


def install_wheel(wheel: Path, out: Path, info: BuildInfo) -> None:
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    site = out / "site-packages"
    scheme = {"purelib": site, "platlib": site, "headers": out / "include", "scripts": out / "bin",
              "data": out / "data"}
    destination = SchemeDictionaryDestination(
        {name: str(path) for name, path in scheme.items()}, interpreter=f"/bin/{info.interpreter}",
        script_kind="posix", bytecode_optimization_levels=(),
    )
    with WheelFile.open(wheel) as source:
        install(source, destination, additional_metadata={})


def is_archive(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(ARCHIVE_MAGIC)) == ARCHIVE_MAGIC


def collect_extensions(out: Path, log: Path, ldflags: list[str]) -> ExtensionList:
    """Move every cross-built archive out of site-packages and list it (with the
    recipe's `build.ldflags`, which the final python.wasm link adds)."""
    by_module = {e.module: e for e in read_events(log) if isinstance(e, ExtensionEvent)}
    site = out / "site-packages"
    static = out / "static"
    found = []
    for so in sorted(site.rglob("*.so")):
        if not is_archive(so):
            raise PipelineError(f"{so.relative_to(out)} is a host shared library, not a wasm archive")
        dotted = module_name(str(so.relative_to(site)))
        event = by_module.get(dotted)
        if event is None:
            raise PipelineError(f"no cross-build record for extension {dotted}")
        static.mkdir(exist_ok=True)
        archive = static / f"{dotted}.a"
        shutil.move(so, archive)
        found.append(Extension(module=dotted, init=event.init, archive=f"static/{dotted}.a", cxx=event.cxx,
                               ldflags=ldflags))
    listing = ExtensionList(extensions=found)
    listing.write(out / "extensions.json")
    return listing


TEST_DIRS = frozenset({"tests", "test"})
NOT_SHIPPED_DIRS = frozenset({"tests", "test", "testing", "doc", "docs", "benchmarks", "bench", "examples"})
COMPILED_SOURCES = (".c", ".cc", ".cpp", ".cxx", ".pyx")


def check_no_compiled_sources(src: Path) -> None:
    """A package that built no extension although its source has C, C++ or Cython files fell
    back to pure Python (optional speedups that failed): a failure, not a silent success."""
    found = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.suffix in COMPILED_SOURCES
                   and p.is_file() and not NOT_SHIPPED_DIRS & set(p.relative_to(src).parts[:-1]))
    if found:
        raise PipelineError(f"no extension module was built, but the source has {len(found)} C/C++/Cython "
                            f"file(s) (e.g. {found[0]}): the package fell back to pure Python")


def unvendor_tests(site: Path, dest: Path) -> list[str]:
    """Move the packages' test directories out of site-packages into `dest`, same layout
    (Pyodide's unvendor-tests): the runtime does not ship them; test tasks merge them back."""
    found = sorted(p for p in site.rglob("*") if p.is_dir() and p.name in TEST_DIRS)
    moved = []
    for tests in found:
        if not tests.exists():  # inside one moved already
            continue
        rel = tests.relative_to(site)
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(tests, dest / rel)
        moved.append(str(rel))
    return moved


def build() -> None:
    ctx = load_context()
    src, out, work = Path(os.environ["SRC"]), Path(os.environ["OUT"]), Path(os.environ["WORK"])
    info = build_info(ctx)
    log = work / "cross.jsonl"
    wheels = sorted(src.glob("*.whl"))
    wheel = wheels[0] if wheels else build_wheel(src, work, ctx, info, log)
    for name in relocate_wheel(wheel, os.environ["PROJECT_ROOT"].encode()):
        print(f"relocated {name}: the checkout's path became {TOKEN.decode()}")
    install_wheel(wheel, out, info)
    recipe = ctx.recipe
    extensions = collect_extensions(out, log, split_ldflags(expand_variables(recipe.build.ldflags))[1]).extensions
    if not extensions and not wheels:
        check_no_compiled_sources(src)
    if recipe.build.unvendor_tests:
        moved = unvendor_tests(out / "site-packages", out / "tests-site")
        if moved:
            print(f"unvendored {len(moved)} test directories into tests-site/")
    missing = set(recipe.test.builtins) - {e.module for e in extensions}
    if missing:
        raise PipelineError(f"extension modules not built: {', '.join(sorted(missing))} (listed in test.builtins)")
    Provenance(recipe=recipe.name, version=recipe.version, source_sha256=ctx.source_sha256,
               license=recipe.about.license).write(out / "package.json")
    print(f"installed {wheel.name}; {len(extensions)} static extension(s): "
          + ", ".join(e.module for e in extensions))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["build"]:
        print("usage: python -m pipeline.wasmbuild.pypackage build", file=sys.stderr)
        return 2
    try:
        build()
    except PipelineError as exc:
        return report_error(exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
