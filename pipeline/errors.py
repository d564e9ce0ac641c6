"""The one error type the engine raises for bad input."""

from __future__ import annotations

import sys
from pathlib import Path


class PipelineError(Exception):
    """A user-facing error: printed as one line, exits non-zero."""


class RecipeError(PipelineError):
    """Bad recipe or config input, naming the file and the field."""

    def __init__(self, file: Path | str, field: str, message: str) -> None:
        self.file = str(file)
        self.field = field
        self.message = message
        where = f"{self.file}: {field}" if field else self.file
        super().__init__(f"{where}: {message}")


def report_error(exc: Exception, exit_code: int = 1) -> int:
    """How every `python -m pipeline...` command ends on bad input: one line, an exit code."""
    print(f"error: {exc}", file=sys.stderr)
    return exit_code
