"""doit entry point: every task comes from the recipes (see pipeline/engine/tasks.py)."""

from pipeline.engine.tasks import doit_namespace

globals().update(doit_namespace(__file__))
