"""Command-line parsing that ends like every other bad input (pipeline.errors' policy)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from .errors import ExitCode


class OneLineArgumentParser(argparse.ArgumentParser):
    """Bad arguments end like every other bad input: one `error:` line, exit 2 (not argparse's usage block)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(int(ExitCode.BAD_INPUT))
