"""`pipeline repro TASK...`: build the tasks again elsewhere and compare every output file.

The second build runs in a copy of the checkout at another, deeper path, with its own empty
artifact cache and no remote cache, so nothing is restored: every task in the closure is built
from its sources. The first side is this checkout's build (brought up to date first), or, with
`--twice`, a second fresh copy. Files a recipe declares under `unreproducible:` are left out;
a task with no file left to compare is reported as not compared, never as reproducible.
Each side records the commit it was built from (and whether the tree was dirty): `--reuse`
refuses a second build made from another commit.

For each file that differs it shows what differs, readably: a text diff; for an `ar` archive,
the members; for a tarball, the members; for other binaries, the strings found in only one.
"""

from __future__ import annotations

import difflib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import PipelineError
from ..files import read_json, write_json_atomic
from ..paths import CACHE_ENV
from .config import REMOTE_ENV
from .outputs import TreeDiff, compare_trees
from .project import Engine

AR_MAGIC = b"!<arch>\n"
PRINTABLE = re.compile(rb"[\x20-\x7e]{8,}")
SHOWN_FILES = 5  # per task
SHOWN_LINES = 6  # per file
# Where the second checkout goes inside the temporary folder: deeper than most, so a path of
# the checkout that leaks into an output shows up as a difference.
DEEPER = Path("second") / "checkout" / "at-another-path"
SECOND_ORIGIN = "second-origin.json"  # in the scratch folder: the commit the second build was made from


@dataclass(frozen=True)
class TaskResult:
    task: str
    diff: TreeDiff
    details: dict[str, list[str]]


LEFT_OUT = frozenset({".git", ".venv", "__pycache__"})


def checkout_files(root: Path, build: Path) -> list[Path]:
    """The project's files as git sees them (tracked and new, not ignored): what a clone has.
    Outside git: every file but the build dir, .git, .venv and __pycache__."""
    proc = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                          capture_output=True, check=False)
    if proc.returncode == 0:
        return [Path(name.decode()) for name in proc.stdout.split(b"\0") if name]
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in LEFT_OUT and Path(folder, d) != build]
        found += [Path(folder, name).relative_to(root) for name in files]
    return found


@dataclass(frozen=True)
class Origin:
    """The commit a build was made from, and whether the checkout had changes git does not hold."""

    commit: str | None  # None outside git
    dirty: bool

    def describe(self) -> str:
        if self.commit is None:
            return "not a git checkout"
        return f"commit {self.commit[:12]}" + (" with uncommitted changes" if self.dirty else "")


def checkout_origin(root: Path) -> Origin:
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "HEAD"], capture_output=True,
                          text=True, check=False)
    if head.returncode != 0:
        return Origin(None, True)
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=normal"],
                            capture_output=True, text=True, check=False)
    return Origin(head.stdout.strip(), bool(status.stdout.strip()) or status.returncode != 0)


def record_origin(scratch: Path, origin: Origin) -> None:
    write_json_atomic(scratch / SECOND_ORIGIN, {"commit": origin.commit, "dirty": origin.dirty})


def reused_origin(reuse: Path, here: Origin) -> Origin:
    """The origin of the second build kept in `reuse`; PipelineError unless it is this checkout's commit."""
    data = read_json(reuse / SECOND_ORIGIN)
    if not isinstance(data, dict) or not isinstance(data.get("commit"), (str, type(None))):
        raise PipelineError(f"--reuse {reuse}: no record of the commit its second build was made from "
                            f"({SECOND_ORIGIN}): run `repro --keep` again")
    kept = Origin(data["commit"], bool(data.get("dirty")))
    if kept.commit != here.commit:
        raise PipelineError(f"--reuse {reuse}: its second build was made from {kept.describe()}, this checkout "
                            f"is at {here.describe()}: the builds of two commits cannot be compared")
    return kept


def copy_checkout(root: Path, build: Path, dest: Path) -> Path:
    for rel in checkout_files(root, build):
        source = root / rel
        if not source.exists() and not source.is_symlink():
            continue  # deleted but not yet committed
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / rel, follow_symlinks=False)
    return dest


def run_build(checkout: Path, tasks: list[str], cache: Path | None, log: Path) -> None:
    """`doit TASKS` in `checkout` (its own cache if given, never a remote); output to `log`."""
    env = {key: value for key, value in os.environ.items() if key != REMOTE_ENV}
    if cache is not None:
        env[CACHE_ENV] = str(cache)
    print(f"repro: building {' '.join(tasks)} in {checkout} (log: {log})", flush=True)
    with open(log, "ab") as handle:
        code = subprocess.run([sys.executable, "-m", "doit", *tasks], cwd=checkout, env=env, stdout=handle,
                              stderr=subprocess.STDOUT, check=False).returncode
    if code:
        raise PipelineError(f"repro: the build in {checkout} failed (exit {code}); see {log}")


def ar_members(data: bytes) -> dict[str, bytes]:
    """The members of a System V / GNU `ar` archive, by name (repeated names numbered)."""
    members: dict[str, bytes] = {}
    names = b""
    at = len(AR_MAGIC)
    while at + 60 <= len(data):
        header = data[at:at + 60]
        name, size = header[:16].decode(errors="replace").strip(), int(header[48:58].decode().strip() or 0)
        body = data[at + 60:at + 60 + size]
        if name == "//":
            names = body
        elif name.startswith("/") and name[1:].isdigit() and names:
            start = int(name[1:])
            name = names[start:names.index(b"/\n", start)].decode(errors="replace")
        name = name.rstrip("/") or name
        unique, n = name, 1
        while unique in members:
            n += 1
            unique = f"{name}#{n}"
        members[unique] = body
        at += 60 + size + (size % 2)
    return members


def tar_members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else repr(m.get_info()).encode())  # type: ignore[union-attr]
                for m in tar.getmembers()}


def member_lines(first: dict[str, bytes], second: dict[str, bytes], kind: str) -> list[str]:
    lines = [f"{kind} member only in first: {name}" for name in sorted(first.keys() - second.keys())]
    lines += [f"{kind} member only in second: {name}" for name in sorted(second.keys() - first.keys())]
    for name in sorted(first.keys() & second.keys()):
        if first[name] != second[name]:
            lines.append(f"{kind} member differs: {name}")
            lines += ["  " + line for line in string_lines(first[name], second[name])]
    return lines


def string_lines(first: bytes, second: bytes) -> list[str]:
    ones, twos = set(PRINTABLE.findall(first)), set(PRINTABLE.findall(second))
    lines = [f"only in first:  {s.decode()[:160]}" for s in sorted(ones - twos)[:3]]
    lines += [f"only in second: {s.decode()[:160]}" for s in sorted(twos - ones)[:3]]
    return lines or [f"same strings; bytes differ ({len(first)} vs {len(second)} bytes)"]


def text_lines(first: bytes, second: bytes) -> list[str]:
    diff = difflib.unified_diff(first.decode(errors="replace").splitlines(),
                                second.decode(errors="replace").splitlines(), "first", "second", lineterm="", n=0)
    return [line for line in diff if not line.startswith(("---", "+++", "@@"))]


def explain_difference(first: Path, second: Path) -> list[str]:
    """What differs between two versions of one output file, in a form a person can read."""
    one, two = first.read_bytes(), second.read_bytes()
    readers: list[tuple[Callable[[bytes], bool], Callable[[bytes, bytes], list[str]]]] = [
        (lambda d: d.startswith(AR_MAGIC), lambda a, b: member_lines(ar_members(a), ar_members(b), "archive")),
        (lambda d: d[:2] == b"\x1f\x8b" and first.name.endswith((".tar.gz", ".tgz")),
         lambda a, b: member_lines(tar_members(a), tar_members(b), "tarball")),
        (lambda d: b"\0" not in d[:8192], text_lines),
    ]
    for recognise, explain in readers:
        if recognise(one) and recognise(two):
            try:
                return explain(one, two)[:SHOWN_LINES]
            except (tarfile.TarError, ValueError, IndexError):
                break
    return string_lines(one, two)[:SHOWN_LINES]


def compare_builds(engine: Engine, first_build: Path, second_build: Path, tasks: list[str]) -> list[TaskResult]:
    results = []
    for task in tasks:
        rel = engine.paths.output_dir(task).relative_to(engine.paths.build)
        diff = compare_trees(first_build / rel, second_build / rel, engine.rendered[task].unreproducible)
        details = {name: explain_difference(first_build / rel / name, second_build / rel / name)
                   for name in diff.differ[:SHOWN_FILES]}
        results.append(TaskResult(task, diff, details))
    return results


def report(results: list[TaskResult]) -> list[str]:
    lines = []
    for result in results:
        diff = result.diff
        if diff.compared_nothing:
            why = (f"every file ({diff.left_out}) is declared unreproducible" if diff.left_out
                   else "it has no output files")
            lines.append(f"  not compared  {result.task}: {why}")
            continue
        if diff.same:
            exempt = f", {diff.left_out} declared unreproducible" if diff.left_out else ""
            lines.append(f"  same     {result.task} ({diff.compared} files{exempt})")
            continue
        lines.append(f"  DIFFERS  {result.task}: {len(diff.differ)} of {diff.compared} files differ"
                     + (f", {len(diff.only_first)} only in first" if diff.only_first else "")
                     + (f", {len(diff.only_second)} only in second" if diff.only_second else ""))
        for name in diff.only_first[:SHOWN_FILES]:
            lines.append(f"      only in first:  {name}")
        for name in diff.only_second[:SHOWN_FILES]:
            lines.append(f"      only in second: {name}")
        for name, detail in result.details.items():
            lines.append(f"      {name}")
            lines += [f"        {line}" for line in detail]
    not_compared = sum(result.diff.compared_nothing for result in results)
    same = sum(result.diff.same for result in results) - not_compared
    files = sum(len(r.diff.differ) + len(r.diff.only_first) + len(r.diff.only_second) for r in results)
    lines.append(f"reproducible: {same}/{len(results)} tasks, {not_compared} not compared, {files} files differ")
    return lines


def repro(engine: Engine, tasks: list[str], twice: bool, keep: bool,
          reuse: Path | None = None) -> tuple[bool, list[str]]:
    """Build `tasks` again elsewhere and compare their closure's outputs; (all same, report).
    `reuse`: the scratch folder of an earlier `--keep` run, whose second build is used as it is."""
    closure = [task for task in engine.graph.order if any(task in engine.graph.closure(t) for t in tasks)]
    here = checkout_origin(engine.paths.root)
    second_origin = here if reuse is None else reused_origin(reuse, here)
    scratch = reuse or Path(tempfile.mkdtemp(prefix="pywasm-repro-"))
    keep = keep or reuse is not None
    try:
        second = scratch / DEEPER
        if reuse is None:
            record_origin(scratch, here)
            copy_checkout(engine.paths.root, engine.paths.build, second)
            run_build(second, tasks, scratch / "cache-second", scratch / "second.log")
        elif not (second / engine.paths.build.relative_to(engine.paths.root)).is_dir():
            raise PipelineError(f"--reuse {reuse}: no second build in it (a folder `repro --keep` printed)")
        if twice:
            first = copy_checkout(engine.paths.root, engine.paths.build, scratch / "first")
            run_build(first, tasks, scratch / "cache-first", scratch / "first.log")
        else:
            first = engine.paths.root
            run_build(first, tasks, None, scratch / "first.log")
        first_build = engine.paths.build if not twice else first / engine.paths.build.relative_to(engine.paths.root)
        second_build = second / engine.paths.build.relative_to(engine.paths.root)
        results = compare_builds(engine, first_build, second_build, closure)
    except PipelineError:
        keep = True  # the failed build's log is in there
        raise
    finally:
        if keep:
            print(f"repro: kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    lines = [f"first:  {'a fresh copy' if twice else 'this checkout'} ({here.describe()}); "
             f"second: a copy at another path, own empty cache ({second_origin.describe()})", *report(results)]
    return all(result.diff.same for result in results), lines
