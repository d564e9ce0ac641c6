"""The compiler stand-ins' two contracts: $PIPELINE_CROSS and cross.jsonl. Standard library only.

crosscc runs once per compile and per link of every extension (hundreds for numpy).
Importing pydantic there cost 0.2 s of CPU per run on this machine (20 runs: 1.1 s ->
5.2 s user), so these two contracts are frozen dataclasses read as strictly as
pipeline.engine.contract reads the others: a schema version, unknown and missing
fields refused, every value's type checked, one `ContractError` naming the place.
pipeline/wasmbuild/contracts.py lists them with the rest.

    $PIPELINE_CROSS   CrossSettings    written by pypackage, read by crosscc
    $WORK/cross.jsonl CompileEvent,    appended by crosscc, read by crosscc and pypackage
                      ExtensionEvent
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from ..errors import ContractError
from ..files import json_from_text

CROSS_ENV = "PIPELINE_CROSS"


def _check_type(value: Any, hint: Any) -> bool:
    """The few value types these contracts use: str, bool, tuple[str, ...], a Literal."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin is tuple:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if hint is bool:
        return isinstance(value, bool)
    return isinstance(value, hint)


@dataclass(frozen=True)
class FlatContract:
    """A versioned JSON object of plain fields (lists arrive as tuples, so instances stay frozen)."""

    SCHEMA_VERSION: ClassVar[int] = 1

    def to_text(self) -> str:
        data = {"schema_version": self.SCHEMA_VERSION, **dataclasses.asdict(self)}
        return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}, sort_keys=True)

    @classmethod
    def from_data(cls, data: Any, where: str) -> Self:
        if not isinstance(data, dict):
            raise ContractError(f"{where}: expected a JSON object for {cls.__name__}")
        version = data.get("schema_version")
        if version is None:
            raise ContractError(f"{where}: no schema_version: not a {cls.__name__} of this pipeline")
        if version != cls.SCHEMA_VERSION:
            raise ContractError(f"{where}: invalid {cls.__name__}: schema version {version}, this code reads "
                                f"version {cls.SCHEMA_VERSION} (written by another version of the pipeline: "
                                "rebuild the task that wrote it)")
        hints = typing.get_type_hints(cls)
        fields = {field.name: field for field in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name == "schema_version":
                continue
            if name not in fields:
                raise ContractError(f"{where}: invalid {cls.__name__}: {name}: unknown field")
            if not _check_type(value, hints[name]):
                raise ContractError(f"{where}: invalid {cls.__name__}: {name}: not a {hints[name]} ({value!r})")
            values[name] = tuple(value) if isinstance(value, list) else value
        for name, field in fields.items():
            required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            if required and name not in values:
                raise ContractError(f"{where}: invalid {cls.__name__}: {name}: missing")
        return cls(**values)

    @classmethod
    def from_text(cls, text: str, where: str) -> Self:
        return cls.from_data(json_from_text(text, where), where)


@dataclass(frozen=True)
class CrossSettings(FlatContract):
    """Everything crosscc needs, in one environment variable ($PIPELINE_CROSS)."""

    cc: tuple[str, ...]  # the C compiler command, target and sysroot included
    cxx: tuple[str, ...]
    cflags: tuple[str, ...]
    cxxflags: tuple[str, ...]
    ar: str
    nm: str
    ld: str
    log: str  # cross.jsonl: every compile and every extension archive, appended
    drop_includes: tuple[str, ...] = ()  # host include dirs that must never reach a wasm compile
    library_dirs: tuple[str, ...] = ()  # -L dirs of the recipe's ldflags: their static libraries join a module

    def to_env(self) -> dict[str, str]:
        return {CROSS_ENV: self.to_text()}

    @classmethod
    def from_env(cls) -> Self:
        text = os.environ.get(CROSS_ENV)
        if text is None:
            raise ContractError(f"${CROSS_ENV} is not set: crosscc runs under the python-package builder")
        return cls.from_text(text, f"${CROSS_ENV}")


@dataclass(frozen=True)
class CompileEvent(FlatContract):
    lang: Literal["c", "c++"]
    cwd: str
    argv: tuple[str, ...]
    output: str  # absolute
    kind: Literal["compile"] = "compile"


@dataclass(frozen=True)
class ExtensionEvent(FlatContract):
    module: str
    init: str
    output: str
    libs: tuple[str, ...]
    cxx: bool
    kind: Literal["extension"] = "extension"


CrossEvent = CompileEvent | ExtensionEvent
EVENT_KINDS: dict[str, type[CompileEvent] | type[ExtensionEvent]] = {"compile": CompileEvent,
                                                                     "extension": ExtensionEvent}


def append_event(log: Path, event: CrossEvent) -> None:
    """One line per event, appended: compiles run in parallel, and an O_APPEND write of one
    short line lands whole (this log is not rewritten, so no atomic replace)."""
    with open(log, "a") as handle:
        handle.write(event.to_text() + "\n")


def read_events(log: Path) -> list[CrossEvent]:
    """Every event of a cross.jsonl, in order; none when no compile ran."""
    if not log.exists():
        return []
    events: list[CrossEvent] = []
    for number, line in enumerate(log.read_text().splitlines(), 1):
        where = f"{log}:{number}"
        data = json_from_text(line, where)
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind not in EVENT_KINDS:
            raise ContractError(f"{where}: invalid cross-build event: kind {kind!r}")
        events.append(EVENT_KINDS[kind].from_data(data, where))
    return events
