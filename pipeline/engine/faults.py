"""Test-only fault points: a harness makes a run pause at an exact place, then kills it there.

`fault_point(name)` marks a place where a kill must leave nothing wrong (mid-restore,
mid-download, between the two renames of a swap-in, ...). It does nothing unless
$PIPELINE_FAULT_POINT is set; then each pass of the named point appends a line
`<name>` to $PIPELINE_FAULT_FILE, and the n-th pass (`<name>:<n>`, default 1) also
appends `paused <name>` and blocks the calling thread forever, so that the harness
(tests/test_faults.py) can kill the run in whichever way it is testing. The pass count
lives in that file, not in this process: no global state.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

FAULT_POINT_ENV = "PIPELINE_FAULT_POINT"
FAULT_FILE_ENV = "PIPELINE_FAULT_FILE"


def fault_point(name: str) -> None:
    wanted = os.environ.get(FAULT_POINT_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    trace = Path(os.environ[FAULT_FILE_ENV])
    with open(trace, "a") as handle:
        handle.write(f"{name}\n")
    if trace.read_text().split("\n").count(name) >= int(nth or 1):
        with open(trace, "a") as handle:
            handle.write(f"paused {name}\n")
        while True:  # until the harness kills us
            time.sleep(60)
