"""The python-package builder's self-test: link a python.wasm with this package's static
extensions (and its package dependencies'), then import each `test.imports` inside it, and
check each extension is a built-in module.

A module apart from pypackage (the build): its imports (the linker driver, the guest runner) are
then only in the self-test's key, so editing them reruns the packages' self-tests, not their builds.

Run by the builder's generated test step; reads $RECIPE_JSON, $OUT, $WORK.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import PipelineError, report_error
from ..runtime.wasm import WasiRun, default_module_cache, load_module, make_engine, run_wasi
from .link import link_python
from .pypackage import build_info, load_context


def test() -> None:
    """Import each `test.imports` inside a python.wasm linked with this package's extensions."""
    ctx = load_context()
    out, work = Path(os.environ["OUT"]), Path(os.environ["WORK"])
    imports = ctx.recipe.test.imports
    if not imports:
        return
    cpython = Path(ctx.cpython)
    # packages with Python modules; a library recipe's output (headers, archives) has none
    packages = [out, *(dep for dep in map(Path, ctx.package_deps) if (dep / "site-packages").is_dir())]
    wasm = work / "test-python.wasm"
    tc = ctx.toolchain
    extensions = link_python(cpython, packages, tc.cc, wasm, work / "link", tc.nm)
    builtins = sorted(e.module for e in extensions)
    code = (
        "import sys, importlib\n"
        f"for name in {imports!r}:\n"
        "    importlib.import_module(name); print('imported', name)\n"
        f"for name in {builtins!r}:\n"
        "    assert name in sys.builtin_module_names, name\n"
        "    module = importlib.import_module(name); print('built-in', module)\n"
    )
    home = cpython / build_info(ctx).home
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
    # no arguments: everything comes from the build context; argparse gives --help and refuses extras
    argparse.ArgumentParser(prog="python -m pipeline.wasmbuild.importtest",
                            description=(__doc__ or "").split("\n\n")[0]).parse_args(argv)
    try:
        test()
    except PipelineError as exc:
        return report_error(exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
