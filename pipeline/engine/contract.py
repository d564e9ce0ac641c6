"""The base of every file or variable one process writes and another reads.

A contract is a pydantic model with a schema version. Its writer is `write` (one
atomic write through `pipeline.files`) or `to_text` (for an environment variable),
its reader `read` / `from_text`; a reader refuses a different schema version, an
unknown field or a missing one with one clear `ContractError`, never a KeyError
three calls later.

Kept small on purpose (pydantic and our kernel only): compiler stand-ins import
contracts once per compile, and every module here enters the key of the tools
that import it. Models build their validators on first use (`defer_build`), so a
process pays only for the contracts it touches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from ..errors import ContractError
from ..files import json_from_text, write_atomic

__all__ = ["Contract", "ContractError", "Part", "describe"]


class Part(BaseModel):
    """A piece of a contract: unknown fields are errors, values never change after reading."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Contract(Part):
    """One versioned file (or variable) crossing a process boundary."""

    # Bump in a subclass when a field is renamed, removed or changes meaning.
    SCHEMA_VERSION: ClassVar[int] = 1

    schema_version: int = 0  # filled in with the class's SCHEMA_VERSION when built in code

    @model_validator(mode="before")
    @classmethod
    def _stamp_version(cls, data: Any) -> Any:
        if isinstance(data, dict) and "schema_version" not in data:
            return {**data, "schema_version": cls.SCHEMA_VERSION}
        return data

    @model_validator(mode="after")
    def _check_version(self) -> Self:
        if self.schema_version != self.SCHEMA_VERSION:
            raise ValueError(
                f"schema version {self.schema_version}, this code reads version {self.SCHEMA_VERSION}"
                " (written by another version of the pipeline: rebuild the task that wrote it)"
            )
        return self

    # --- text: environment variables and files alike ---------------------
    def to_text(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=1) + "\n"

    @classmethod
    def from_text(cls, text: str, where: str) -> Self:
        """Parse and validate; `where` names the file or variable in the error."""
        data = json_from_text(text, where)
        if not isinstance(data, dict):
            raise ContractError(f"{where}: expected a JSON object for {cls.__name__}")
        if "schema_version" not in data:
            raise ContractError(f"{where}: no schema_version: not a {cls.__name__} file of this pipeline")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ContractError(f"{where}: invalid {cls.__name__}: {describe(exc)}") from None

    # --- files -------------------------------------------------------------
    def write(self, path: Path) -> Path:
        """Atomically: a reader sees the previous file or this one, never half of it."""
        write_atomic(path, self.to_text())
        return path

    @classmethod
    def read(cls, path: Path) -> Self:
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ContractError(f"{path}: missing ({cls.__name__})") from None
        except OSError as exc:
            raise ContractError(f"{path}: cannot read: {exc.strerror}") from None
        return cls.from_text(text, str(path))


def describe(exc: ValidationError) -> str:
    """pydantic's first error as one line naming the field."""
    err = exc.errors()[0]
    field = ".".join(str(part) for part in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{field}: unknown field"
    if err["type"] == "missing":
        return f"{field}: missing"
    return f"{field}: {err['msg'].removeprefix('Value error, ')}"
