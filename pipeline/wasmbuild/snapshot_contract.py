"""snapshot.json, the snapshot task's description of its output, as a versioned contract.

A contract like those in contracts.py (see its table), in a module of its own: every
tool's key holds the code of the modules it imports, and contracts.py is imported by
cpythonkit, pypackage, bundle and link, so a model added there would rebuild the whole
chain from build_cpython on. Here only the snapshot tool (its writer) is keyed on it.

    file or variable               model           written by               read by
    snapshot/snapshot.json         SnapshotInfo    snapshot                 invoke (runtime/guest.py)
"""

from __future__ import annotations

from ..engine.contract import Contract


class SnapshotInfo(Contract):
    """snapshot.json: what the pre-initialized snapshot was made from, for invoke and for people.

    Written by pipeline.wasmbuild.snapshot. Read by pipeline.runtime.invoke through the
    minimal reader in pipeline/runtime/guest.py (the runtime imports no wasmbuild and
    no pydantic): keep SCHEMA_VERSION equal to its SCHEMA_VERSION when bumping either.
    """

    snapshot: str  # the snapshot's wasm file, in the same directory
    sha256: str
    size: int
    python_wasm: str  # relative to the runtime root
    python_wasm_sha256: str
    preload: list[str]  # besides pyfaasm, in import order
    hash_seed: int  # the frozen PYTHONHASHSEED
    hash_seed_from: str  # "snapshot-hash-seed" or "python.wasm sha256"
    wasmtime_cli: str  # the CLI (`wasmtime wizer`) version and its wheel's
    init_export: str
    run_export: str
