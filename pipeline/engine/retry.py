"""The one retry rule for what the engine asks of the network: try again after a wait that
doubles each time, while the error is one another try can change.

Downloads and the remote cache differ only in how often and how long they wait (`Retry`).
It waits through `time.sleep`, looked up at each wait: tests record the waits instead of
sleeping them by replacing it (tests/conftest.py: recorded_sleeps).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Retry:
    tries: int
    first_wait: float  # seconds before the second try, doubled before each further one

    def waits(self) -> list[float]:
        return [self.first_wait * 2**n for n in range(self.tries - 1)]

    def call(self, attempt: Callable[[], T], transient: Callable[[Exception], bool]) -> T:
        """`attempt()`'s result. An error `transient` says another try can change is tried again
        after the next wait, until the tries run out; the last error, or any other, is raised."""
        for wait in self.waits():
            try:
                return attempt()
            except Exception as exc:
                if not transient(exc):
                    raise
            time.sleep(wait)
        return attempt()
