"""The snapshot stage's two settings rules, shared by pipeline.yaml's checks (the wasm
layer's WasmSettings, wasmbuild/settings.py) and the snapshot tool (wasmbuild/snapshot.py);
standard library only.
"""

from __future__ import annotations

import re

# A Python module's dotted name, as `import NAME` takes it (snapshot-preload).
MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# PYTHONHASHSEED's range (snapshot-hash-seed); 0 would turn hash randomization off.
HASH_SEED_MAX = 4294967295
