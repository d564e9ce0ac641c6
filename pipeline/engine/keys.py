"""Task keys: sha256 over canonical JSON of everything that can change an output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..files import canonical_json, sha256_text
from ..paths import Paths
from . import ENGINE_VERSION
from .builders import build_script, builder_version, test_script
from .graph import Graph
from .hashing import StatCache
from .layer import Layer
from .spec import Recipe
from .toolkeys import ENGINE_FILES, import_closure, layer_modules, modules_run_by


def tool_version(exe: str) -> str:
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return " | ".join(line.strip() for line in proc.stdout.splitlines()[:2])


def probe_toolchain(tools: list[str], stat_cache: StatCache) -> dict[str, str]:
    """Version strings of the compilers: they enter every downstream key.

    Asked once per changed binary (the stat cache keys them by the binary's inode,
    size and times), not once per run.
    """
    found: dict[str, str] = {}
    for tool in tools:
        exe = shutil.which(tool)
        if exe is None:
            found[tool] = "missing"
            continue
        # Run it by its own name (multi-call binaries such as lld dispatch on it); key the
        # memo by the file behind the link, whose stat changes when the package does.
        real = os.path.realpath(exe)
        found[tool] = stat_cache.remember(real, lambda exe=exe: tool_version(exe), kind=f"version:{exe}:")
    return found


def make_portable(text: str, paths: Paths) -> str:
    """Keys must not depend on where the checkout or cache lives."""
    replacements = sorted(
        [(str(paths.cache), "@CACHE@"), (str(paths.root), "@ROOT@"), (sys.executable, "@PYTHON@")],
        key=lambda pair: -len(pair[0]),
    )
    for real, symbol in replacements:
        text = text.replace(real, symbol)
    return text


@dataclass
class KeyComputer:
    """Computes keys lazily, memoized for one process.

    Lazily, because a downstream key includes the toolchain fingerprint, which
    only exists once the toolchain task has run in this very process.
    """

    paths: Paths
    layer: Layer
    graph: Graph
    render: Callable[[str], Recipe]
    stat_cache: StatCache
    _inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _keys: dict[str, str] = field(default_factory=dict)
    _test_inputs: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    _fingerprint: dict[str, str] | None = None
    _layer_code: dict[str, str] | None = None

    def fingerprint(self) -> dict[str, str]:
        if self._fingerprint is None:
            fingerprinted = self.layer.fingerprinted_tools()
            self._fingerprint = probe_toolchain(fingerprinted.tools if fingerprinted else [], self.stat_cache)
        return self._fingerprint

    def layer_code(self) -> dict[str, str]:
        """The project layer's code: it shapes every task's templates and steps, so it is in every
        key. The engine's own code is not (ENGINE_VERSION and the builder versions stand for it)."""
        if self._layer_code is None:
            self._layer_code = {path: digest for path, digest in
                                import_closure(layer_modules(self.layer), self.stat_cache).items()
                                if not path.startswith(ENGINE_FILES)}
        return self._layer_code

    def tool_code(self, builder: str, recipe: Recipe) -> dict[str, str]:
        """Digests of our own Python modules the build steps run, with their import closures."""
        script = build_script(builder, recipe, self.layer)
        return import_closure(modules_run_by(script), self.stat_cache)

    def file_digests(self, task: str, items: list[str]) -> dict[str, dict[str, str]]:
        folder = self.graph.nodes[task].folder
        out: dict[str, dict[str, str]] = {}
        for item in items:
            target = (folder / item).resolve()
            rel = target.relative_to(self.paths.root).as_posix() if target.is_relative_to(self.paths.root) else item
            out[rel] = self.stat_cache.tree_digests(target)
        return out

    def inputs(self, task: str) -> dict[str, Any]:
        if task in self._inputs:
            return self._inputs[task]
        entry = self.graph.nodes[task]
        recipe = self.render(task)
        source = recipe.source
        fingerprinted = self.layer.fingerprinted_tools()
        installer = fingerprinted.installed_by if fingerprinted else None
        uses_toolchain = installer is not None and installer in self.graph.closure(task) and installer != task
        found: dict[str, Any] = {
            "engine": ENGINE_VERSION,
            "builder": {"name": entry.builder, "version": builder_version(entry.builder, self.layer)},
            "layer": self.layer_code(),
            "tools": self.tool_code(entry.builder, recipe),
            "recipe": recipe.model_dump(mode="json", by_alias=True, exclude_defaults=True),
            "source": None,
            "patches": self.file_digests(task, source.patches) if source else {},
            "inputs": self.file_digests(task, recipe.inputs),
            "deps": {dep: self.key(dep) for dep in self.graph.deps[task]},
            "toolchain": self.fingerprint() if uses_toolchain else None,
        }
        if source is not None:
            found["source"] = source.sha256 or self.file_digests(task, [source.path or ""])
            if source.extras:  # files copied into the source tree (only then: other keys stay as they were)
                found["extras"] = self.file_digests(task, [given for given, _ in source.extras])
        self._inputs[task] = self.portable(found)
        return self._inputs[task]

    def portable(self, found: dict[str, Any]) -> dict[str, Any]:
        """Round-tripped through portable JSON, so stored inputs compare like keys do."""
        return json.loads(make_portable(canonical_json(found), self.paths))

    def test_inputs(self, task: str) -> dict[str, Any] | None:
        """What the self-test's verdict depends on, or None for a task without one: the output it
        checks (the build key) and the test script with the import closure of the tools it runs.

        Kept apart from the build key (Bazel keeps test actions apart from build actions): a change
        to code only the self-test runs (the guest runner, the import check) reruns the self-test
        against the output in place, and never the build. The recipe's `test:` section stays in the
        build key too: a build step may read any recipe field through $RECIPE_JSON.
        """
        if task not in self._test_inputs:
            script = test_script(self.graph.nodes[task].builder, self.render(task), self.layer)
            self._test_inputs[task] = None if not script else self.portable({
                "build": self.key(task),
                "script": script,
                "tools": import_closure(modules_run_by(script), self.stat_cache),
            })
        return self._test_inputs[task]

    def test_key(self, task: str) -> str | None:
        inputs = self.test_inputs(task)
        return None if inputs is None else sha256_text(canonical_json(inputs))

    def computed(self) -> dict[str, str]:
        """Every key computed so far in this process."""
        return dict(self._keys)

    def computed_test_keys(self) -> dict[str, str | None]:
        """Every self-test key computed so far in this process (None: the task has no self-test)."""
        return {task: self.test_key(task) for task in self._test_inputs}

    def key(self, task: str) -> str:
        if task not in self._keys:
            self._keys[task] = sha256_text(canonical_json(self.inputs(task)))
        return self._keys[task]
