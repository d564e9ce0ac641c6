"""doit entry point: every task comes from the recipes (see pipeline/engine/tasks.py), built for
wasm by the project layer named here (pipeline/wasmbuild/layer.py): the engine knows no target."""

from pipeline.engine.tasks import doit_namespace

globals().update(doit_namespace(__file__, layer="pipeline.wasmbuild.layer:WASM_LAYER"))
