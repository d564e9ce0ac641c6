"""Running python.wasm: knows nothing of the build engine.

    wasm        wasmtime engines, WASI runs, machine-code lookup by content key; run_export
                starts every guest, start_guest_thread gives it its stack
    guest       what every call's guest starts with; what invoke reads of a snapshot
    faasm_host  the function API's host calls: chained calls, limits per call
    invoke      the function store and `invoke run`: a function in the runtime root
    digests     where the kernel's stat cache (pipeline.digests) keeps the runtime's wasm digests
"""
