"""`pipeline build-recipes DIR [NAME|tag:T|*]...`: build a tree of recipes, past failures, and report.

DIR (e.g. Pyodide's `packages/`) is layered after the project's own recipes: a recipe of the
same name in `recipes/packages/` wins, and everything in DIR that needs it builds against ours.
The selected recipes and what they need are built by doit with `--continue`; a recipe that fails
to load, is disabled, or needs a tool that is not installed is skipped with its dependents.
Each recipe's outcome (built / failed / skipped, with a one-line reason) is printed as a
table and written as JSON (`RecipeReport`).
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Literal

from ..errors import PipelineError
from ..files import write_atomic
from .config import KEEP_GOING_ENV, RECIPE_TREES_ENV
from .contract import Contract
from .layer import ProjectLayer
from .loader import name_from_path, shown_path
from .project import Engine, load_engine
from .spec import canonical_name

Outcome = Literal["built", "failed", "skipped"]
# The telling lines of a failed build, most telling first: a compiler's or linker's error
# (`ld.lld: error:`, `<target>-ld-19: error:`, named with the linker), a
# CMake error, a Python exception, an unreachable host; else any line that says error.
REASON_PATTERNS = (
    re.compile(r"(fatal error: .*|(?:\b[\w.+]+-)?\bld(?:\.lld)?(?:-\d+)?: error: .*|: error: .*)"),
    re.compile(r"(CMake Error.*)"),
    re.compile(r"\b((?:[A-Z]\w*Error|[A-Z]\w*Exception): .*)"),
    re.compile(r"(Could not resolve host: \S+)"),
)
GENERIC = re.compile(r"subprocess-exited-with-error|wheel build failed|metadata-generation-failed|"
                     r"originates from a subprocess|Failed building wheel|Failed to build")
REASON_LINE = re.compile(r"(error|Error|ERROR|failed|FAILED|not found|undefined|No such)")


class RecipeOutcome(Contract):
    name: str
    recipe: str  # the recipe file, as shown in errors
    outcome: Outcome
    reason: str = ""
    overridden_by: str | None = None  # the project's own recipe of this name, which was built instead


class RecipeReport(Contract):
    """What `build-recipes` did with each selected recipe of a tree."""

    tree: str
    selection: list[str]
    recipes: list[RecipeOutcome]

    def counts(self) -> dict[str, int]:
        found = {"built": 0, "failed": 0, "skipped": 0}
        for item in self.recipes:
            found[item.outcome] += 1
        return found


def tree_recipes(tree: Path) -> dict[str, Path]:
    """Canonical name -> recipe file, for every `<name>/meta.yaml` of the tree."""
    return {canonical_name(name_from_path(file)): file for file in sorted(tree.glob("*/meta.yaml"))}


def select(tree: Path, files: dict[str, Path], selection: list[str], tags: dict[str, list[str]]) -> list[str]:
    """The canonical names the selection picks: names, globs (`*`, `py*`), `tag:T`."""
    chosen: list[str] = []
    for item in selection or ["*"]:
        if item.startswith("tag:"):
            hits = [name for name in files if item[4:] in tags.get(name, [])]
        else:
            hits = [name for name in files if fnmatch.fnmatchcase(name, canonical_name(item))]
        if not hits:
            raise PipelineError(f"build-recipes: {item!r} matches no recipe in {tree}")
        chosen += [name for name in hits if name not in chosen]
    return chosen


def failure_reason(log: Path) -> str:
    """The most telling line of a failed task's log: the first compiler, CMake or Python error,
    else the last line that says error."""
    if not log.is_file():
        return "failed (no log)"
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for pattern in REASON_PATTERNS:
        for line in lines:
            found = pattern.search(line)
            if found and not line.startswith("+"):
                return found[1].lstrip(": ")[:200]
    for line in reversed(lines[-60:]):
        if REASON_LINE.search(line) and not line.startswith("+") and not GENERIC.search(line):
            return line[:200]
    return (lines[-1] if lines else "failed")[:200]


def outcome_of(engine: Engine, task: str) -> tuple[Outcome, str]:
    if engine.status(task).up_to_date:
        return "built", ""
    failed_deps = {dep for dep in engine.graph.closure(task) - {task} if not engine.status(dep).up_to_date}
    if failed_deps:
        # name the root cause: a failed dependency whose own dependencies all built
        roots = sorted(dep for dep in failed_deps if not (engine.graph.closure(dep) - {dep}) & failed_deps)
        return "skipped", f"needs {roots[0]}, which failed"
    return "failed", failure_reason(engine.paths.log_file(task))


def run_tree_build(root: Path, env: dict[str, str], tasks: list[str], log: Path) -> int:
    print(f"build-recipes: doit --continue on {len(tasks)} recipes (and what they need); log: {log}", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        return subprocess.run([sys.executable, "-m", "doit", "--continue", *tasks], cwd=root, env=env,
                              stdout=handle, stderr=subprocess.STDOUT, check=False).returncode


def build_recipes(root: Path, layer: ProjectLayer, tree: Path, selection: list[str], report_file: Path | None,
                  dry_run: bool = False) -> RecipeReport:
    tree = tree.resolve()
    if not tree.is_dir():
        raise PipelineError(f"build-recipes: {tree} is not a folder of recipes")
    env = dict(os.environ)
    env[RECIPE_TREES_ENV] = os.pathsep.join(filter(None, [str(tree), env.get(RECIPE_TREES_ENV, "")]))
    env[KEEP_GOING_ENV] = "1"
    engine = load_engine(root, layer, keep_going=True, trees=(tree,))
    files = tree_recipes(tree)
    by_file = {entry.file: entry for entry in engine.graph.nodes.values()}
    own = {canonical_name(e.recipe.name): e for e in engine.graph.nodes.values()
           if e.is_package and not e.file.is_relative_to(tree)}
    tags = {name: list(by_file[file].recipe.package.tag) for name, file in files.items() if file in by_file}
    chosen = select(tree, files, selection, tags)
    shown = {name: (str(files[name].relative_to(tree.parent))) for name in chosen}
    outcomes: dict[str, RecipeOutcome] = {}
    tasks: list[str] = []
    for name in chosen:
        file = files[name]
        if name in own:
            tasks.append(own[name].task)
            outcomes[name] = RecipeOutcome(name=name, recipe=shown[name], outcome="built",
                                           overridden_by=own[name].rel)
        elif file in by_file:
            tasks.append(by_file[file].task)
        else:
            reason = engine.skipped.get(shown_path(engine.paths, file), "skipped")
            outcomes[name] = RecipeOutcome(name=name, recipe=shown[name], outcome="skipped",
                                           reason=reason.split(": ", 1)[-1])
    if tasks and not dry_run:
        run_tree_build(root, env, tasks, engine.paths.build / "logs" / "build-recipes.log")
    engine = load_engine(root, layer, keep_going=True, trees=(tree,))  # statuses after the build
    for name in chosen:
        if name in outcomes and outcomes[name].overridden_by is None:
            continue
        task = own[name].task if name in own else by_file[files[name]].task
        outcome, reason = outcome_of(engine, task) if not dry_run else ("skipped", "dry run")
        outcomes[name] = RecipeOutcome(name=name, recipe=shown[name], outcome=outcome, reason=reason,
                                       overridden_by=own[name].rel if name in own else None)
    report = RecipeReport(tree=str(tree), selection=selection or ["*"], recipes=[outcomes[n] for n in chosen])
    if report_file is not None:
        write_atomic(report_file, report.model_dump_json(indent=1))
    return report


def report_table(report: RecipeReport) -> list[str]:
    width = max([len(item.name) for item in report.recipes] + [6])
    lines = [f"{'recipe':<{width}}  outcome  reason"]
    for item in report.recipes:
        why = item.reason or (f"(the project's own recipe: {item.overridden_by})" if item.overridden_by else "")
        lines.append(f"{item.name:<{width}}  {item.outcome:<7}  {why}")
    counts = report.counts()
    lines.append(f"{len(report.recipes)} recipes: {counts['built']} built, {counts['failed']} failed, "
                 f"{counts['skipped']} skipped")
    return lines
