"""doit entry point: every task comes from the recipes (see pipeline/tasks.py)."""

from pipeline.tasks import doit_namespace

globals().update(doit_namespace(__file__))
