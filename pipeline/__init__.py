"""pywasm-pipeline: Python for WebAssembly runtimes, built by a content-keyed graph.

Three layers, one folder each; imports only point down this list (tests/test_layers.py):

    pipeline/engine/     the generic build engine: recipe files -> validated models -> graph
                         -> keys -> doit tasks -> builders -> build/ and the caches.
                         Knows nothing of WebAssembly.
    pipeline/wasmbuild/  the wasm build tools recipes run: the python-package builder and its
                         cross-compiler stand-ins, extension namespaces, relink, the runtime
                         root, ahead-of-time codegen, test reports. Uses the engine and runtime.
    pipeline/runtime/    running python.wasm: wasmtime engines and WASI runs, the function host
                         (chained calls, limits), invoke. Knows nothing of the engine.

Shared by all three: `errors` (exit codes, the one error type), `files` (digests, atomic
writes), `digests` (the stat-keyed digest cache), `paths` (every path, computed in one
place), `arguments` (argument parsing that ends in one `error:` line), `preload` (the
snapshot settings' rules, for config and the tool).
`python -m pipeline` is the CLI; `python -m pipeline.invoke|wasm|codegen` are kept as the
documented entry points.
"""
