"""Command line: `python -m pipeline COMMAND --help`.

Building itself goes through doit (`doit build_cpython`); these commands are
the tools around it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import PipelineError, report_error


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    text = text.strip().upper().removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def cmd_schema(args: argparse.Namespace) -> int:
    from .engine.spec import Recipe

    text = json.dumps(Recipe.model_json_schema(by_alias=True), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .engine.project import load_engine

    engine = load_engine(args.root)
    if args.json:
        graph = engine.graph
        closure = {task: sorted(graph.closure(task)) for task in graph.order}
        print(json.dumps({"order": list(graph.order), "deps": graph.deps, "closure": closure}, indent=1))
    else:
        print(f"ok: {len(engine.graph.order)} recipes, order: {' '.join(engine.graph.order)}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .engine.explain import explain
    from .engine.project import load_engine

    engine = load_engine(args.root)
    unknown = [t for t in args.tasks if t not in engine.graph.nodes]
    if unknown:
        raise PipelineError(f"unknown task {unknown[0]!r}; known: {' '.join(engine.graph.order)}")
    print("\n".join(explain(engine, args.tasks)))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from .engine.cache import ArtifactCache
    from .engine.config import load_config, project_paths

    paths = project_paths(args.root.resolve(), load_config(args.root.resolve()))
    removed, left = ArtifactCache(paths).prune(parse_size(args.max_size))
    print(f"removed {removed} entries; {left / (1 << 20):.1f} MiB left in {paths.artifacts}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    """Seed the remote cache with what this checkout has built (up-to-date tasks only)."""
    from .engine.project import load_engine

    engine = load_engine(args.root)
    if engine.remote is None:
        raise PipelineError("no remote cache: set remote-cache in pipeline.yaml or PIPELINE_REMOTE_CACHE")
    tasks = args.tasks or list(engine.graph.order)
    pushed = total = 0
    for task in tasks:
        if task not in engine.graph.nodes:
            raise PipelineError(f"unknown task {task!r}")
        key = engine.keys.key(task)
        if not engine.status(task).up_to_date or not engine.cache.has(key):
            print(f"skipped {task}: not built here (or not in the local cache)")
            continue
        result = engine.remote.push(key, engine.cache)
        if result.warning:
            raise PipelineError(f"{task}: {result.warning}")
        pushed += 1
        total += result.bytes
    print(f"pushed {pushed} tasks, {total / 1e6:.1f} MB uploaded")
    return 0


def cmd_provision(args: argparse.Namespace) -> int:
    from .engine.config import load_config
    from .engine.provision import ensure_apt_packages, ensure_deb_src

    config = load_config(args.root.resolve())
    if not args.packages_only:
        ensure_deb_src()
        print("deb-src entries in place")
    if not args.deb_src:
        installed = ensure_apt_packages(config.system_packages + config.toolchain_packages)
        print(f"installed: {' '.join(installed)}" if installed else "pinned packages already installed")
    return 0


def cmd_mkpkg(args: argparse.Namespace) -> int:
    from .paths import Paths
    from .wasmbuild.mkpkg import make_recipe, update_recipe

    paths = Paths.for_project(args.root.resolve())
    if args.update:
        _, summary = update_recipe(paths, args.name, args.version, force=args.force)
        print(summary)
    else:
        target = make_recipe(paths, args.name, args.version)
        print(f"wrote {target.relative_to(paths.root)}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project root (default: current dir)")
    sub = parser.add_subparsers(dest="command", required=True)

    schema = sub.add_parser("schema", help="write the recipe JSON Schema (for editors)")
    schema.add_argument("-o", "--output", help="file to write (default: stdout)")
    schema.set_defaults(func=cmd_schema)

    check = sub.add_parser("check", help="validate config and every recipe, print the build order")
    check.add_argument("--json", action="store_true", help="print the graph (order, deps, closures) as JSON")
    check.set_defaults(func=cmd_check)

    explain = sub.add_parser("explain", help="say why tasks would run, naming the key inputs that changed")
    explain.add_argument("tasks", nargs="*", help="tasks (with their dependencies); default: all")
    explain.set_defaults(func=cmd_explain)

    prune = sub.add_parser("prune", help="shrink the artifact cache to a size bound (least recently used first)")
    prune.add_argument("--max-size", required=True, help="e.g. 500M, 10G")
    prune.set_defaults(func=cmd_prune)

    push = sub.add_parser("push", help="upload up-to-date tasks' outputs to the remote cache")
    push.add_argument("tasks", nargs="*", help="tasks to push (default: all)")
    push.set_defaults(func=cmd_push)

    provision = sub.add_parser("provision", help="install the pinned toolchain packages and deb-src entries (root)")
    provision.add_argument("--deb-src", action="store_true", help="only add deb-src entries")
    provision.add_argument("--packages-only", action="store_true", help="only install packages")
    provision.set_defaults(func=cmd_provision)

    mkpkg = sub.add_parser(
        "mkpkg", help="write recipes/packages/<name>.yaml from PyPI metadata (like `pyodide mkpkg`)",
        description="Write recipes/packages/<name>.yaml (PEP 503 name) from PyPI metadata: the sdist "
        "(else a pure wheel) and its sha256, summary, license, home page. Refuses to overwrite a recipe. "
        "--update bumps package.version, source.version and source.sha256 of an existing recipe and keeps "
        "every other field, but re-dumps the YAML: comments and formatting are lost.",
    )
    mkpkg.add_argument("name", help="the PyPI project name")
    mkpkg.add_argument("--version", help="release to use (default: the latest)")
    mkpkg.add_argument("--update", action="store_true",
                       help="bump an existing recipe to the latest (or --version); comments are lost")
    mkpkg.add_argument("--force", action="store_true",
                       help="with --update: update even if the recipe has source.patches (they may not apply)")
    mkpkg.add_argument("--root", type=Path, default=argparse.SUPPRESS, help="project root (as the global --root)")
    mkpkg.set_defaults(func=cmd_mkpkg)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PipelineError as exc:
        return report_error(exc)


if __name__ == "__main__":
    raise SystemExit(main())
