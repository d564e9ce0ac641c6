"""What every call's guest starts with, and what invoke needs of a snapshot directory.

Light on purpose (standard library only): pipeline.wasmbuild.snapshot imports it to start
CPython, at snapshot time, in the environment calls run with (GUEST_ENV), so its key holds
this file and not invoke's.

snapshot.json is a contract, `SnapshotInfo` in pipeline/wasmbuild/contracts.py, written by
pipeline.wasmbuild.snapshot. The runtime layer may not import wasmbuild or the engine (and
an invocation must stay light), so this is its one reader here: it checks the schema
version and the two fields invoke uses, nothing else. tests/test_snapshot.py checks that it
reads what the contract writes and that the versions agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ContractError

# The environment of every call (and of pre-initialization: the snapshot keeps what CPython read).
# PYTHONHOME=/ makes prefix = exec_prefix = "/": the stdlib is found at /lib/python3.13
# with no "Could not find platform ... libraries" warning.
GUEST_ENV = {"PYTHONHOME": "/", "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
SNAPSHOT_TASK = "snapshot"  # its output dir is invoke's default --snapshot
SNAPSHOT_WASM = "python-snapshot.wasm"
SNAPSHOT_INFO = "snapshot.json"
INIT_EXPORT = "wizer-initialize"
RUN_EXPORT = "pyfaasm-run-call"
SCHEMA_VERSION = 1  # SnapshotInfo.SCHEMA_VERSION


@dataclass(frozen=True)
class SnapshotRef:
    """The snapshot's wasm file and the sha256 of the python.wasm it was made from."""

    wasm: Path
    python_wasm_sha256: str
    run_export: str


def read_snapshot_info(snapshot_dir: Path) -> SnapshotRef:
    path = snapshot_dir / SNAPSHOT_INFO
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ContractError(f"{path}: missing (SnapshotInfo): run `doit snapshot`") from None
    except (OSError, ValueError) as exc:
        raise ContractError(f"{path}: cannot read the snapshot's description: {exc}") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        found = data.get("schema_version") if isinstance(data, dict) else None
        raise ContractError(f"{path}: schema version {found}, this code reads version {SCHEMA_VERSION}"
                            " (rebuild the snapshot task)")
    fields = {name: data.get(name) for name in ("snapshot", "python_wasm_sha256", "run_export")}
    bad = [name for name, value in fields.items() if not isinstance(value, str) or not value]
    if bad or "/" in fields["snapshot"]:
        raise ContractError(f"{path}: invalid SnapshotInfo: {', '.join(bad) or 'snapshot'}")
    return SnapshotRef(snapshot_dir / fields["snapshot"], fields["python_wasm_sha256"], fields["run_export"])
