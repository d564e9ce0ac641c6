"""The generic build engine: recipe files -> validated models -> graph -> keys -> doit tasks -> build/.

It knows nothing of WebAssembly: a target comes as a project layer (layer.py), injected by the
project's entry points. Modules, in the order data flows through them:

    spec      recipe and config models (pydantic, kebab-case aliases)
    config    pipeline.yaml: the engine's keys; every other key goes to the layer's model
    layer     the project layer protocol: its settings, template variables, builders, key inputs;
              NO_LAYER, the engine alone
    contract  the base of every file or variable one process writes and another reads;
              context: the one the engine writes for Python builders ($RECIPE_JSON)
    loader    finds recipe files, validates them
    graph     dependency resolution, cycles, topological order (graphlib)
    render    jinja2 over every string field
    toolkeys  the import closure of our own Python tools a task runs (keyed automatically)
    keys      task keys: everything that can change an output
    hashing   the kernel's stat cache (pipeline.digests) with the memo's witness; tree digests
    state     per-task records and the up-to-date check
    cache     local content-addressed artifact cache; remote: shared caches
    sources   fetch, verify, extract, patch
    builders  build and test scripts: the `shell` builder, the layer's steps around a recipe's own
    context   the build context it hands Python builders ($RECIPE_JSON); contract: their base
    runner    one task: restore or build atomically, self-test, record
    supervisor one per build step: the step, and all it starts, end with the runner
    faults    test-only fault points where the fault-injection harness kills a run
    tasks     doit task dicts; reporter: progress lines; explain: why a task would run;
              picture: the graph as DOT/SVG, each node with its state
    project   the loaded project (config, recipes, graph, keys); lock: one run at a time
    memo      the no-op path: the last run's graph and keys while nothing they came from changed
    provision apt: pinned packages, deb-src entries
"""

ENGINE_VERSION = "2"  # bump when what a key means changes
