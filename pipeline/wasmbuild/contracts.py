"""Every file and variable the wasm build tools pass between processes, as versioned models.

Each has a schema version, one writer and one reader (`Contract.write`/`read`, or
`to_text`/`from_text` for a variable; see pipeline/engine/contract.py):

    file or variable               model           written by               read by
    build_cpython/build-info.json  BuildInfo       cpythonkit               pypackage, bundle (via recipe)
    build_cpython/relink/link.json RelinkKit       cpythonkit               link
    <output>/package.json          Provenance      cpythonkit, pypackage    bundle
    <package>/extensions.json      ExtensionList   pypackage                link
    $PIPELINE_CROSS                CrossSettings   pypackage                crosscc
    $WORK/cross.jsonl              CompileEvent,   crosscc (appends)        crosscc, pypackage
                                   ExtensionEvent
    runtime_root/manifest.json     RuntimeManifest bundle                   tests, whoever ships the root
    snapshot/snapshot.json         SnapshotInfo    snapshot                 invoke (runtime/guest.py)
                                   (in snapshot_contract.py: see there why)

Two more live in small modules of their own, so the tools that read them stay small to key:
`WasmBuildContext` ($RECIPE_JSON: the engine's `BuildContext`, the rendered `Recipe` and
where the dependencies are, plus the toolchain and the CPython kit; written by the engine
through the wasm layer, read by pypackage and emcompat) in context.py, and `Toolchain`
(`tc` in templates; the toolchain task's toolchain.json, written by toolchain.py) in llvm.py.

The compiler stand-ins' pair ($PIPELINE_CROSS, cross.jsonl) is defined in crossargs.py with
the standard library only: crosscc runs once per compile and must not pay for pydantic. It is
not imported here, so the tools that use only the contracts above are not keyed on it.
"""

from __future__ import annotations

from ..engine.contract import Contract, Part

# ---- the CPython kit (build_cpython's output) ----------------------------------


class BuildInfo(Contract):
    """What package builds need from build_cpython; paths relative to its output dir."""

    python_version: str  # X.Y of the pinned CPython
    interpreter: str  # the native build-python's executable name, pythonX.Y
    include: str  # the wasm headers (Python.h): runtime/include/pythonX.Y
    home: str  # the guest's "/" (stdlib under lib/pythonX.Y), e.g. runtime
    stdlib: str  # runtime/lib/pythonX.Y


class RelinkKit(Contract):
    """The link line of python.wasm as data; paths relative to the kit (relink/)."""

    ldflags: list[str]
    libs: list[str]  # -l flags, archives (copied into the kit) and -Llib
    objects: list[str]  # e.g. Programs/python.o
    archive: str  # libpythonX.Y.a
    config_c: str = "config.c"  # Modules/config.c, with its ADDMODULE markers
    includes: list[str]  # relative to build_cpython's output, for compiling config.c


# ---- provenance and extensions (every package output) --------------------------


class Provenance(Contract):
    """Where a group of the runtime root's files came from."""

    recipe: str
    version: str | None = None
    source_sha256: str | None = None
    license: str | None = None


class Extension(Part):
    module: str  # dotted name, registered as a built-in
    init: str  # its PyInit_ symbol, unique per dotted name
    archive: str  # relative to the package output
    cxx: bool  # needs libc++ at the final link
    ldflags: list[str] = []  # the package recipe's build.ldflags


class ExtensionList(Contract):
    extensions: list[Extension]


# ---- the runtime root ---------------------------------------------------------------


class ManifestEntry(Part):
    path: str  # relative to the root, posix
    size: int
    sha256: str
    recipe: str
    source_sha256: str | None
    license: str | None


class RuntimeManifest(Contract):
    """Every file of the runtime root, sorted by path, with its origin."""

    files: list[ManifestEntry]
