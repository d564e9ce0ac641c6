"""One error and exit-code policy for every command of the project.

User errors (bad recipe, config, argument, missing input) are `PipelineError`s and
end a command with one `error:` line and `ExitCode.BAD_INPUT`. Subclasses that mean
something else (a failed build step, a trapped guest) carry their own code.
Task failures inside doit are reported by doit itself, as values (doit's own rule).

Exit codes, the same for `python -m pipeline ...`, every `python -m pipeline.X`
tool and `doit` load errors:

    0    success
    1    a build step, self-test or guest program failed (its log or traceback says why)
    2    bad input: recipe, config, argument, missing file (one `error:` line)
    3    machine code missing or stale for this wasmtime, or a snapshot made from another
         python.wasm: run `doit codegen`
    124  a guest exceeded its time limit
    125  a guest trapped (or could not be instantiated)
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    STALE_CODEGEN = 3
    TIME_LIMIT = 124
    TRAP = 125


class PipelineError(Exception):
    """A user-facing error: printed as one line, exits with `exit_code`."""

    exit_code: ExitCode = ExitCode.BAD_INPUT


class RecipeError(PipelineError):
    """Bad recipe or config input, naming the file and the field."""

    def __init__(self, file: Path | str, field: str, message: str) -> None:
        self.file = str(file)
        self.field = field
        self.message = message
        where = f"{self.file}: {field}" if field else self.file
        super().__init__(f"{where}: {message}")


class ContractError(PipelineError):
    """A file or variable one of our processes wrote for another that is missing, torn,
    foreign or of another schema version (pipeline/engine/contract.py)."""


class TaskFailed(PipelineError):
    """A build step, self-test or guest test run exited non-zero."""

    exit_code = ExitCode.FAILED


def report_error(exc: BaseException, exit_code: ExitCode | None = None) -> int:
    """How every command ends on an error: one `error:` line, then its exit code."""
    print(f"error: {exc}", file=sys.stderr)
    if exit_code is not None:
        return int(exit_code)
    return int(exc.exit_code) if isinstance(exc, PipelineError) else int(ExitCode.FAILED)
