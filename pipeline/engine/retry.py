"""The one retry rule for what the engine asks of the network: try again after a wait that
doubles each time, while the error is one another try can change.

Downloads and the remote cache differ only in how often and how long they wait (`Retry`).
Tests fake the clock by replacing this module's `sleep`:
`monkeypatch.setattr(pipeline.engine.retry, "sleep", waits.append)` records the waits instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from time import sleep  # looked up at each wait, so that a test can replace it
from typing import TypeVar

T = TypeVar("T")

__all__ = ["Retry", "sleep"]


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
            sleep(wait)
        return attempt()
