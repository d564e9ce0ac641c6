"""The python-package builder: a PyPI sdist (or pure wheel) -> site-packages + static extensions.

    build: wheel from the sdist with the native build-python (same CPython
           version as the wasm one), compilers swapped for pipeline.crosscc so C
           extensions come out as wasm32 archives; installed with `installer`
           into $OUT/site-packages; archives moved to $OUT/static and listed in
           $OUT/extensions.json; provenance in $OUT/package.json.
    test:  link a python.wasm with this package's extensions (and its package
           dependencies'), then import each `test.imports` inside it.

Run by the builder's generated step; reads $RECIPE_JSON, $SRC, $OUT, $WORK.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from ..errors import PipelineError, report_error
from .crosscc import module_name

ARCHIVE_MAGIC = b"!<arch>\n"


def load_context() -> dict[str, Any]:
    return json.loads(Path(os.environ["RECIPE_JSON"]).read_text())


def build_python_dir(ctx: dict[str, Any]) -> Path:
    """The native CPython of the same version: its pip builds the wheels."""
    return Path(ctx["build_python"])


def build_info(ctx: dict[str, Any]) -> dict[str, Any]:
    return json.loads((Path(ctx["cpython"]) / "build-info.json").read_text())


def write_wrappers(bin_dir: Path, target: str) -> dict[str, str]:
    """Tiny scripts for CC/CXX/LDSHARED: build frontends drop PYTHONPATH, so set it here.

    Named like the toolchain's own wrappers (`<target>-cc`), so the toolchain's
    cross-file template can point at them.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    repo = Path(__file__).resolve().parent.parent
    paths = {}
    for mode in ("cc", "c++", "ldshared"):
        script = bin_dir / f"{target}-{mode}"
        script.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(repo))} exec {shlex.quote(sys.executable)}"
                          f" -m pipeline.wasmbuild.crosscc {mode} \"$@\"\n")
        script.chmod(0o755)
        paths[mode] = str(script)
    return paths


def write_meson_cross_file(tc: dict[str, str], bin_dir: Path, dest: Path) -> Path:
    """The toolchain's meson cross file, with the compilers swapped for our wrappers."""
    template = (Path(__file__).resolve().parent.parent / "toolchain" / "meson-cross.ini.in").read_text()
    fill = {"@TARGET@": tc["target"], "@SYSROOT@": tc["sysroot"], "@BIN@": str(bin_dir), "@AR@": tc["ar"],
            "@NM@": tc["nm"], "@RANLIB@": tc["ranlib"], "@STRIP@": tc["strip"]}
    for placeholder, value in fill.items():
        template = template.replace(placeholder, value)
    dest.write_text(template)
    return dest


def uses_meson(src: Path) -> bool:
    pyproject = src / "pyproject.toml"
    if not pyproject.exists():
        return False
    backend = tomllib.loads(pyproject.read_text()).get("build-system", {}).get("build-backend", "")
    return backend == "mesonpy"


def cross_env(ctx: dict[str, Any], info: dict[str, Any], work: Path, log: Path) -> dict[str, str]:
    tc, build = ctx["tc"], ctx["recipe"]["build"]
    wrapper = write_wrappers(work / "bin", tc["target"])
    include = Path(ctx["cpython"]) / info["include"]
    env = dict(os.environ)
    env.update(
        {
            "CC": wrapper["cc"], "CXX": wrapper["c++"],
            "LDSHARED": wrapper["ldshared"], "LDCXXSHARED": wrapper["ldshared"],
            # Extension builds that may fall back to pure Python must fail instead.
            "CIBUILDWHEEL": "1",
            "AR": tc["ar"], "RANLIB": tc["ranlib"],
            "CFLAGS": "", "CXXFLAGS": "", "LDFLAGS": "", "CPPFLAGS": "",
            "CROSS_CC": tc["cc"],
            # CPython's WASI pthread stubs header says `restrict`, which C++ spells `__restrict`.
            "CROSS_CXX": (f"{tc['cxx']} -fno-exceptions -nostdinc++ -isystem {tc['libcxx_include']}"
                          " -Drestrict=__restrict"),
            "CROSS_CFLAGS": f"-O2 -DNDEBUG -I{include} {build.get('cflags', '')}",
            "CROSS_CXXFLAGS": f"-O2 -DNDEBUG -I{include} {build.get('cxxflags', '')}",
            "CROSS_AR": tc["ar"], "CROSS_NM": tc["nm"], "CROSS_LD": tc["ld"], "CROSS_LOG": str(log),
            # The build-python's own headers: x86_64 pyconfig.h must never reach a wasm compile.
            "CROSS_DROP_INCLUDES": str(build_python_dir(ctx) / "include" / Path(info["include"]).name),
        }
    )
    constraints = ctx["recipe"].get("requirements", {}).get("constraint", [])
    if constraints:
        # Pins for the isolated build environment's requirements (Cython, meson-python, ...).
        pins = work / "build-constraints.txt"
        pins.write_text("".join(f"{line}\n" for line in constraints))
        env["PIP_CONSTRAINT"] = str(pins)
    return env


def build_wheel(src: Path, work: Path, ctx: dict[str, Any], info: dict[str, Any], log: Path) -> Path:
    dist = work / "dist"
    interpreter = build_python_dir(ctx) / "bin" / info["interpreter"]
    argv = [str(interpreter), "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
            "-w", str(dist), "."]
    settings = shlex.split(ctx["recipe"]["build"].get("backend-flags", ""))
    if uses_meson(src):
        # meson-python: cross-compile with the toolchain's cross file (recipes may add
        # their own after it) in a known build dir, so module paths are predictable.
        cross = write_meson_cross_file(ctx["tc"], work / "bin", work / "meson-cross.ini")
        settings[:0] = [f"setup-args=--cross-file={cross}", f"build-dir={work / 'meson-build'}"]
    argv[5:5] = [f"--config-settings={flag}" for flag in settings]
    print("+", " ".join(argv), flush=True)
    proc = subprocess.run(argv, cwd=src, env=cross_env(ctx, info, work, log), check=False)
    if proc.returncode:
        raise PipelineError(f"wheel build failed ({proc.returncode})")
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != 1:
        raise PipelineError(f"expected one wheel, found {[w.name for w in wheels]}")
    return wheels[0]


def install_wheel(wheel: Path, out: Path) -> None:
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    site = out / "site-packages"
    scheme = {"purelib": site, "platlib": site, "headers": out / "include", "scripts": out / "bin",
              "data": out / "data"}
    destination = SchemeDictionaryDestination(
        {name: str(path) for name, path in scheme.items()}, interpreter="/bin/python3.13",
        script_kind="posix", bytecode_optimization_levels=(),
    )
    with WheelFile.open(wheel) as source:
        install(source, destination, additional_metadata={})


def is_archive(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(ARCHIVE_MAGIC)) == ARCHIVE_MAGIC


def collect_extensions(out: Path, log: Path, ldflags: list[str]) -> list[dict[str, Any]]:
    """Move every cross-built archive out of site-packages and list it (with the
    recipe's `build.ldflags`, which the final python.wasm link adds)."""
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    by_module = {e["module"]: e for e in events if e["kind"] == "extension"}
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
        found.append({"module": dotted, "init": event["init"], "archive": f"static/{dotted}.a",
                      "cxx": event["cxx"], "ldflags": ldflags})
    (out / "extensions.json").write_text(json.dumps(found, indent=1) + "\n")
    return found


TEST_DIRS = frozenset({"tests", "test"})


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
    install_wheel(wheel, out)
    recipe = ctx["recipe"]
    extensions = collect_extensions(out, log, shlex.split(recipe["build"].get("ldflags", "")))
    if recipe["build"].get("unvendor-tests", True):
        moved = unvendor_tests(out / "site-packages", out / "tests-site")
        if moved:
            print(f"unvendored {len(moved)} test directories into tests-site/")
    missing = set(recipe.get("test", {}).get("builtins", [])) - {e["module"] for e in extensions}
    if missing:
        raise PipelineError(f"extension modules not built: {', '.join(sorted(missing))} (listed in test.builtins)")
    about = recipe.get("about", {})
    provenance = {"recipe": recipe["package"]["name"], "version": recipe["package"]["version"],
                  "source_sha256": ctx["source_sha256"], "license": about.get("license")}
    (out / "package.json").write_text(json.dumps(provenance, indent=1) + "\n")
    print(f"installed {wheel.name}; {len(extensions)} static extension(s): "
          + ", ".join(e["module"] for e in extensions))


def test() -> None:
    """Import each `test.imports` inside a python.wasm linked with this package's extensions."""
    from ..runtime.wasm import WasiRun, default_module_cache, load_module, make_engine, run_wasi
    from .link import link_python

    ctx = load_context()
    out, work = Path(os.environ["OUT"]), Path(os.environ["WORK"])
    imports = ctx["recipe"].get("test", {}).get("imports", [])
    if not imports:
        return
    cpython = Path(ctx["cpython"])
    packages = [out] + [Path(p) for task, p in ctx["deps"].items() if task.startswith("packages:")]
    wasm = work / "test-python.wasm"
    tc = ctx["tc"]
    extensions = link_python(cpython, packages, tc["cc"], wasm, work / "link", tc["nm"], libcxx_lib=tc["libcxx_lib"])
    builtins = sorted(e.module for e in extensions)
    code = (
        "import sys, importlib\n"
        f"for name in {imports!r}:\n"
        "    importlib.import_module(name); print('imported', name)\n"
        f"for name in {builtins!r}:\n"
        "    assert name in sys.builtin_module_names, name\n"
        "    module = importlib.import_module(name); print('built-in', module)\n"
    )
    home = cpython / build_info(ctx)["home"]
    preopens = [(str(home), "/")] + [(str(p / "site-packages"), f"/pkg{i}") for i, p in enumerate(packages)]
    run = WasiRun(
        argv=["python", "-c", code],
        env={"PYTHONPATH": ":".join(f"/pkg{i}" for i in range(len(packages))), "PYTHONDONTWRITEBYTECODE": "1"},
        preopens=preopens,
        read_only=frozenset(guest for _, guest in preopens),
    )
    engine = make_engine()
    exit_code = run_wasi(load_module(engine, wasm, cache_dir=default_module_cache()), engine, run)
    if exit_code:
        raise PipelineError(f"import test failed inside wasm (exit {exit_code})")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in (["build"], ["test"]):
        print("usage: python -m pipeline.wasmbuild.pypackage build|test", file=sys.stderr)
        return 2
    try:
        build() if args == ["build"] else test()
    except PipelineError as exc:
        return report_error(exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
