"""pywasm: the tools around the build (`pywasm COMMAND --help`; also `python -m pipeline`).

Building itself goes through doit (`doit build_cpython`, or `./dev build`); these
commands check, explain, draw and feed it, and run functions on what it built.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import OneLineArgumentParser
from .errors import PipelineError, report_error

if TYPE_CHECKING:
    from .engine.layer import ProjectLayer
    from .engine.project import Engine

SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """500M, 10G, 1.5T, 1024 (bytes); powers of 1024."""
    match = SIZE.match(text)
    if match is None or not math.isfinite(float(match[1])):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 500M, 10G)")
    return int(float(match[1]) * SIZE_UNITS[match[2].upper()])


def project_root(text: str) -> Path:
    root = Path(text)
    if not root.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
    return root


def project_layer() -> ProjectLayer:
    """This project builds for wasm: the engine gets the wasm layer from here (and from dodo.py)."""
    from .wasmbuild.layer import WASM_LAYER

    return WASM_LAYER


def engine_for_tasks(root: Path, tasks: list[str]) -> Engine:
    """The loaded project, after checking that every named task exists."""
    from .engine.project import load_engine

    engine = load_engine(root, project_layer())
    unknown = [t for t in tasks if t not in engine.graph.nodes]
    if unknown:
        raise PipelineError(f"unknown task {unknown[0]!r}; known: {' '.join(engine.graph.order)}")
    return engine


def cmd_schema(args: argparse.Namespace) -> int:
    from .engine.spec import Recipe

    text = json.dumps(Recipe.model_json_schema(by_alias=True), indent=2) + "\n"
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as exc:
            raise PipelineError(f"--output {args.output}: cannot write: {exc.strerror}") from None
    else:
        sys.stdout.write(text)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .engine.config import keep_going_requested
    from .engine.project import load_engine

    engine = load_engine(args.root, project_layer(), keep_going=args.keep_going or keep_going_requested())
    if args.json:
        graph = engine.graph
        closure = {task: sorted(graph.closure(task)) for task in graph.order}
        print(json.dumps({"order": list(graph.order), "deps": graph.deps, "closure": closure,
                          "skipped": engine.skipped}, indent=1))
    else:
        for reason in engine.skipped.values():
            print(f"skipped: {reason}")
        what = "the rest" if engine.skipped else "ok"
        print(f"{what}: {len(engine.graph.order)} recipes, order: {' '.join(engine.graph.order)}")
    if engine.skipped:
        total = len(engine.skipped) + len(engine.graph.order)
        raise PipelineError(f"{len(engine.skipped)} of {total} recipes skipped (listed above)")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .engine.explain import explain

    engine = engine_for_tasks(args.root, args.tasks)
    print("\n".join(explain(engine, args.tasks)))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from .engine.cache import ArtifactCache
    from .engine.config import load_config, project_paths
    from .wasmbuild import compilecache

    paths = project_paths(args.root.resolve(), load_config(args.root.resolve(), project_layer()))
    # the compile cache may keep up to half of the bound; the artifacts get the rest
    compiled = compilecache.trim(paths, args.max_size // 2)
    removed, left = ArtifactCache(paths).prune(args.max_size - compiled)
    print(f"removed {removed} entries; {left / (1 << 20):.1f} MiB left in {paths.artifacts}, "
          f"{compiled / (1 << 20):.1f} MiB in the compile cache")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    """Seed the remote cache with what this checkout has built (up-to-date tasks only)."""
    from .engine.project import load_engine
    from .engine.state import SELF_TEST_CHANGED

    engine = load_engine(args.root, project_layer())
    if engine.remote is None:
        raise PipelineError("no remote cache: set remote-cache in pipeline.yaml or PIPELINE_REMOTE_CACHE")
    tasks = args.tasks or list(engine.graph.order)
    pushed = total = 0
    for task in tasks:
        if task not in engine.graph.nodes:
            raise PipelineError(f"unknown task {task!r}")
        key = engine.keys.key(task)
        status = engine.status(task)
        # an output whose self-test alone changed is still the one its key asks for
        if not (status.up_to_date or status.reason == SELF_TEST_CHANGED) or not engine.cache.has(key):
            print(f"skipped {task}: not built here (or not in the local cache)")
            continue
        test_key = engine.keys.test_key(task)  # its self-test's pass travels with it
        passed = test_key is not None and engine.cache.has(test_key)
        if test_key is not None and not passed:
            print(f"{task}: its output only; its current self-test has not passed here (run doit first)")
        for entry in [key] + ([test_key] if passed and test_key else []):
            result = engine.remote.push(entry, engine.cache)
            if result.warning:
                raise PipelineError(f"{task}: {result.warning}")
            total += result.bytes
        pushed += 1
    print(f"pushed {pushed} tasks, {total / 1e6:.1f} MB uploaded")
    return 0


def cmd_provision(args: argparse.Namespace) -> int:
    from .engine.config import load_config
    from .engine.provision import ensure_apt_packages, ensure_deb_src

    config = load_config(args.root.resolve(), project_layer())
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


def cmd_graph(args: argparse.Namespace) -> int:
    from .engine.picture import graph_dot, render_svg

    engine = engine_for_tasks(args.root, args.tasks)
    text, counts = graph_dot(engine, args.tasks)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    dot_file = Path(args.output) if args.output else engine.paths.build / "graph.dot"
    dot_file.parent.mkdir(parents=True, exist_ok=True)
    svg_file = Path(args.svg) if args.svg else dot_file.with_suffix(".svg")
    try:
        dot_file.write_text(text)
    except OSError as exc:
        raise PipelineError(f"--output {dot_file}: cannot write: {exc.strerror}") from None
    drawn = not args.no_svg and render_svg(dot_file, svg_file)
    summary = ", ".join(f"{n} {state}" for state, n in counts.items())
    print(f"wrote {dot_file}" + (f" and {svg_file}" if drawn else "") + f": {summary}")
    if not drawn and not args.no_svg:
        print("no SVG: Graphviz `dot` is not installed (apt-get install graphviz)")
    return 0


def cmd_result(args: argparse.Namespace) -> int:
    """What the main job (`./dev build`) made: hello's output and where the runtime is."""
    from .engine.config import load_config, project_paths
    from .places import RUNTIME_ROOT_TASK, codegen_dir, runtime_root_tree

    root = args.root.resolve()
    paths = project_paths(root, load_config(root, project_layer()))
    hello = paths.output_dir(args.invoke_task) / "hello.out"
    if not hello.is_file():
        raise PipelineError(f"{hello}: not built yet (run `doit invoke`, or ./dev build)")
    shown = {
        "runtime root": runtime_root_tree(paths),
        "its tarball": paths.output_dir(RUNTIME_ROOT_TASK) / "runtime_root.tar.gz",
        "machine code": codegen_dir(paths),
    }
    print(f"--- {hello.relative_to(root)} ---")
    print(hello.read_text().rstrip("\n"))
    print("---")
    for what, where in shown.items():
        print(f"{what + ':':<14} {where}" + ("" if where.exists() else "  (missing)"))
    print("run a function: pywasm invoke run --file func/python/hello.py")
    return 0


def cmd_repro(args: argparse.Namespace) -> int:
    from .engine.repro import repro

    engine = engine_for_tasks(args.root, args.tasks)
    same, lines = repro(engine, args.tasks, twice=args.twice, keep=args.keep, reuse=args.reuse)
    print("\n".join(lines))
    return 0 if same else 1


def cmd_build_recipes(args: argparse.Namespace) -> int:
    from .engine.treebuild import build_recipes, report_table

    report_file = args.json or args.root.resolve() / "build" / "recipes-report.json"
    report = build_recipes(args.root, project_layer(), args.tree, args.selection, report_file, dry_run=args.dry_run)
    print("\n".join(report_table(report)))
    print(f"report: {report_file}")
    return 0 if not report.counts()["failed"] or args.keep_going else 1


def cmd_invoke(args: argparse.Namespace) -> int:
    from .runtime.invoke import main as invoke_main

    return invoke_main(args.arguments)


def make_parser(prog: str = "python -m pipeline") -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--root", type=project_root, default=Path.cwd(), help="project root (default: current dir)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    schema = sub.add_parser("schema", help="write the recipe JSON Schema (for editors)")
    schema.add_argument("-o", "--output", help="file to write (default: stdout)")
    schema.set_defaults(func=cmd_schema)

    check = sub.add_parser("check", help="validate config and every recipe, print the build order")
    check.add_argument("--json", action="store_true", help="print the graph (order, deps, closures) as JSON")
    check.add_argument("--keep-going", action="store_true",
                       help="a tree of recipes: list each recipe that fails to load, and its dependents, as "
                       "skipped, and check the rest ($PIPELINE_KEEP_GOING=1 does the same for doit)")
    check.set_defaults(func=cmd_check)

    explain = sub.add_parser("explain", help="say why tasks would run, naming the key inputs that changed")
    explain.add_argument("tasks", nargs="*", help="tasks (with their dependencies); default: all")
    explain.set_defaults(func=cmd_explain)

    prune = sub.add_parser(
        "prune", help="shrink the artifact and compile caches to a size bound (least recently used first)")
    prune.add_argument("--max-size", required=True, type=parse_size, help="e.g. 500M, 10G")
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
    mkpkg.add_argument("--root", type=project_root, default=argparse.SUPPRESS,
                       help="project root (as the global --root)")
    mkpkg.set_defaults(func=cmd_mkpkg)

    graph = sub.add_parser(
        "graph", help="draw the task graph (DOT, and SVG with Graphviz), each task's state and why",
        description="Write the task graph as Graphviz DOT, and as SVG where `dot` is installed. Each task "
        "shows its version and what a run would do: up to date (green), would restore from the cache (blue) "
        "or would run (orange), with the reason and the first changed key input.",
    )
    graph.add_argument("tasks", nargs="*", help="tasks (with their dependencies); default: all")
    graph.add_argument("-o", "--output", help="DOT file ('-': stdout); default: build/graph.dot")
    graph.add_argument("--svg", help="SVG file (default: the DOT file's name with .svg)")
    graph.add_argument("--no-svg", action="store_true", help="write only the DOT file")
    graph.set_defaults(func=cmd_graph)

    result = sub.add_parser("result", help="show hello's output, and where the runtime root, tarball, machine code are")
    result.add_argument("--invoke-task", default="invoke", help="the task that ran hello (default: %(default)s)")
    result.set_defaults(func=cmd_result)

    repro = sub.add_parser(
        "repro", help="build tasks again in a copy at another path with an empty cache; compare every output file",
        description="Build TASKs (and what they depend on) again in a copy of the checkout at another path, "
                    "with its own empty cache and no remote, and compare every output file with this "
                    "checkout's build (or, with --twice, with a second fresh copy). Exit 1 if any differs.")
    repro.add_argument("tasks", nargs="+", metavar="TASK")
    repro.add_argument("--twice", action="store_true", help="build both sides fresh (two cold builds)")
    repro.add_argument("--keep", action="store_true", help="keep the temporary copies (their path is printed)")
    repro.add_argument("--reuse", type=Path, metavar="DIR",
                       help="compare with the second build a `--keep` run left in DIR instead of building it again")
    repro.set_defaults(func=cmd_repro)
    trees = sub.add_parser(
        "build-recipes", help="build a tree of recipes (e.g. Pyodide's packages/) past failures; report each",
        description="Build the recipes of TREE (folders of <name>/meta.yaml, e.g. Pyodide's packages/), layered "
                    "after the project's own recipes (ours win by name), going on past failures. Prints "
                    "built / failed / skipped with a reason for each, and writes the table as JSON.")
    trees.add_argument("tree", type=Path, metavar="TREE")
    trees.add_argument("selection", nargs="*", metavar="NAME|tag:T|GLOB",
                       help="which recipes (default: all); their dependencies come along")
    trees.add_argument("--json", type=Path, help="where to write the report (default: build/recipes-report.json)")
    trees.add_argument("--continue", dest="keep_going", action="store_true",
                       help="exit 0 even if recipes failed (the report says which)")
    trees.add_argument("--dry-run", action="store_true", help="load and select only; build nothing")
    trees.set_defaults(func=cmd_build_recipes)
    invoke = sub.add_parser(
        "invoke", add_help=False, help="upload and run functions on the built runtime (`pywasm invoke --help`)",
        description="Everything after `invoke` goes to pipeline.runtime.invoke (upload, run).",
    )
    invoke.add_argument("arguments", nargs=argparse.REMAINDER, help="upload USER FUNC FILE | run ...")
    invoke.set_defaults(func=cmd_invoke)
    return parser


def split_at_invoke(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """`[--root R] invoke ARGS...`: ARGS go to invoke's own parser untouched.

    argparse's REMAINDER cannot take arguments that start with `-` first
    (`invoke --help`, `invoke run --file x`), so they are split off here.
    """
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "invoke":
            return argv[: index + 1], argv[index + 1 :]
        if not word.startswith("-"):
            break
        index += 2 if word == "--root" else 1
    return argv, None


def main(argv: list[str] | None = None, prog: str = "python -m pipeline") -> int:
    head, forwarded = split_at_invoke(sys.argv[1:] if argv is None else argv)
    args = make_parser(prog).parse_args(head)
    if forwarded is not None:
        args.arguments = forwarded
    try:
        return int(args.func(args))
    except PipelineError as exc:
        return report_error(exc)


def console() -> int:
    """The `pywasm` console command (pyproject's [project.scripts])."""
    return main(prog="pywasm")


if __name__ == "__main__":
    raise SystemExit(main())
