"""Running python.wasm: knows nothing of the build engine.

    wasm        wasmtime engines, WASI runs, machine-code lookup by content key
    faasm_host  the function API's host calls: chained calls, limits per call
    invoke      the function store and `invoke run`: a function in the runtime root
"""
