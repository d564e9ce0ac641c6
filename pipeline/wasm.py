"""`python -m pipeline.wasm`: the documented entry point; the code is pipeline.runtime.wasm."""

from pipeline.runtime.wasm import main

if __name__ == "__main__":
    raise SystemExit(main())
