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

The engine's own two, which it writes and the tools here read, live in the engine
(it imports no other layer): `BuildContext` ($RECIPE_JSON, read by pypackage) and
`Toolchain` (`tc`, the toolchain task's toolchain.json) in pipeline/engine/context.py.

This module imports nothing heavier than pydantic: crosscc imports it once per compile.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, TypeAdapter, ValidationError

from ..engine.contract import Contract, ContractError, Part, describe

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


# ---- the cross-compiler stand-ins ----------------------------------------------

CROSS_ENV = "PIPELINE_CROSS"


class CrossSettings(Contract):
    """Everything crosscc needs, in one environment variable ($PIPELINE_CROSS)."""

    cc: list[str]  # the C compiler command, target and sysroot included
    cxx: list[str]
    cflags: list[str]
    cxxflags: list[str]
    ar: str
    nm: str
    ld: str
    log: str  # cross.jsonl: every compile and every extension archive, appended
    drop_includes: list[str] = []  # host include dirs that must never reach a wasm compile

    def to_env(self) -> dict[str, str]:
        return {CROSS_ENV: self.to_text()}

    @classmethod
    def from_env(cls) -> Self:
        text = os.environ.get(CROSS_ENV)
        if text is None:
            raise ContractError(f"${CROSS_ENV} is not set: crosscc runs under the python-package builder")
        return cls.from_text(text, f"${CROSS_ENV}")


class CompileEvent(Contract):
    kind: Literal["compile"] = "compile"
    lang: Literal["c", "c++"]
    cwd: str
    argv: list[str]
    output: str  # absolute


class ExtensionEvent(Contract):
    kind: Literal["extension"] = "extension"
    module: str
    init: str
    output: str
    libs: list[str]
    cxx: bool


CrossEvent = Annotated[CompileEvent | ExtensionEvent, Field(discriminator="kind")]


def append_event(log: Path, event: CompileEvent | ExtensionEvent) -> None:
    """One line per event, appended: compiles run in parallel, and an O_APPEND write of one
    short line lands whole (this log is not rewritten, so no atomic replace)."""
    line = json.dumps(event.model_dump(mode="json"), sort_keys=True) + "\n"
    with open(log, "a") as handle:
        handle.write(line)


def read_events(log: Path) -> list[CompileEvent | ExtensionEvent]:
    """Every event of a cross.jsonl, in order; none when no compile ran."""
    if not log.exists():
        return []
    adapter = TypeAdapter(CrossEvent)
    events: list[CompileEvent | ExtensionEvent] = []
    for number, line in enumerate(log.read_text().splitlines(), 1):
        where = f"{log}:{number}"
        try:
            events.append(adapter.validate_json(line))
        except ValidationError as exc:
            raise ContractError(f"{where}: invalid cross-build event: {describe(exc)}") from None
    return events


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
