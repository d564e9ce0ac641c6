"""The one error type the engine raises for bad input."""

from __future__ import annotations

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
