"""The wasm build: the engine's project layer, and the tools recipes run (`python -m pipeline.wasmbuild.X`).

    layer      the project layer (engine/layer.py) dodo.py and the CLI inject: template variables,
               the autotools/python-package/library builders, fingerprinted compilers
    settings   its pipeline.yaml keys (target, malloc, versions.llvm, snapshot preload...)
    llvm       the LLVM cross toolchain for the target (`Toolchain`, `tc` in templates)
    context    $RECIPE_JSON for these builders: the engine's context plus toolchain and CPython kit
    contracts  every file and variable these tools pass between processes, as versioned models
    toolchain  the toolchain task's outputs: toolchain.json, compiler wrappers, cross files
    cpythonkit build_cpython's relink kit, build info and provenance, from CPython's Makefile
    pypackage  the python-package builder: a wheel from an sdist with cross-compiler stand-ins;
               importtest: its self-test, the package's imports inside a python.wasm linked with it
    crosscc    those stand-ins: compiles go to clang for the target, "shared" links make archives;
               crossargs: their settings ($PIPELINE_CROSS) and log, standard library only
    wasmobj    one symbol namespace per extension module (localizes globals in a wasm object)
    link       python.wasm relinked with every package's extensions as built-in modules
    bundle     the runtime root: python.wasm, stdlib, site-packages, functions, manifest, tarball
    codegen    ahead-of-time machine code for every .wasm of a runtime root
    exports    the snapshot's C exports (init, run one call), compiled for the link step
    snapshot   the pre-initialized interpreter: `wasmtime wizer` over the runtime's python.wasm
    guesttests the parallel test harness: one python.wasm per test module, then a report
    regrtest   passed/failed/skipped per test module from JUnit reports
    mkpkg      a package recipe from PyPI metadata

Uses the engine (recipes, sources) and the runtime (running wasm); neither uses it.
"""
