"""Relocatable, reproducible outputs: the same inputs give the same bytes in any directory,
and a toolchain restored from the cache into another checkout uses that checkout's sysroot."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CLANG, NEEDS_CLANG, REPO, Project, make_project

from pipeline.engine.outputs import TreeDiff, compare_trees, path_leaks
from pipeline.engine.repro import DEEPER, SECOND_ORIGIN, TaskResult, explain_difference, report

needs_llvm = pytest.mark.skipif(CLANG is None, reason=NEEDS_CLANG)


def relocatable_project(tmp_path: Path, name: str, cache: Path) -> Project:
    project = make_project(tmp_path / name, "relocatable")
    shutil.copytree(REPO / "toolchain", project.root / "toolchain")
    return Project(project.root, cache)


@needs_llvm
def test_repro_builds_the_program_again_at_another_path_and_finds_it_the_same(tmp_path: Path) -> None:
    project = relocatable_project(tmp_path, "one", tmp_path / "cache")
    proc = project.cli("repro", "program", "--keep", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reproducible: 3/3 tasks, 0 not compared, 0 files differ" in proc.stdout
    kept = next(line.split(" ", 2)[2] for line in proc.stdout.splitlines() if line.startswith("repro: kept "))
    (Path(kept) / "second/checkout/at-another-path/build/program/where.o").write_bytes(b"\0asm other")
    again = project.cli("repro", "program", "--reuse", kept, check=False)
    assert again.returncode == 1 and "DIFFERS  program: 1 of 2 files differ" in again.stdout, again.stdout
    shutil.rmtree(kept)
    for name in ("where.o", "where-wrapped.o"):  # compiled from a relative and from an absolute path
        built = (project.root / "build/program" / name).read_bytes()
        assert b"where.c" in built and str(project.root).encode() not in built


@needs_llvm
def test_a_toolchain_restored_into_another_checkout_compiles_against_that_checkouts_sysroot(tmp_path: Path) -> None:
    cache = tmp_path / "shared-cache"
    first = relocatable_project(tmp_path, "first", cache)
    first.doit("program")
    second = relocatable_project(tmp_path / "elsewhere" / "and" / "deeper", "second", cache)
    shutil.rmtree(first.root)  # nothing of the first checkout may be needed any more
    second.edit("sysroot", "echo '#define ANSWER 42'", "echo '#define ANSWER 42 /* second */'")
    proc = second.doit("program")
    assert "restored" in proc.stdout + proc.stderr, "the toolchain comes from the shared cache"
    wrapper = second.root / "build/toolchain/bin/wasm32-wasi-cc"
    assert str(tmp_path / "first") not in wrapper.read_text()
    obj = (second.root / "build/program/where-wrapped.o").read_bytes()
    assert obj[:4] == b"\0asm" and str(second.root).encode() not in obj


@pytest.mark.parametrize("declared_unreproducible", [False, True])
def test_an_output_holding_the_checkouts_path_is_refused(project: Project, declared_unreproducible: bool) -> None:
    """`unreproducible:` leaves a file out of comparing two builds, not out of this check."""
    project.edit("hello", 'cc -O1', 'echo "$PWD" > "$OUT/where.txt"; cc -O1')
    if declared_unreproducible:
        project.edit("hello", "outputs: [bin/hello]", "outputs: [bin/hello]\nunreproducible: [where.txt]")
    proc = project.doit("hello", check=False)
    assert proc.returncode != 0
    assert "not relocatable: where.txt" in proc.stdout + proc.stderr
    assert not (project.root / "build/hello").exists(), "nothing half-right is kept"


def test_every_output_file_is_read_for_leaked_paths(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "logs").mkdir(parents=True)
    (out / "logs/run.log").write_text(f"ran in {tmp_path}\n")
    (out / "a.txt").write_text(f"built at {tmp_path}\n")
    (out / "b.txt").write_text("built elsewhere\n")
    assert path_leaks(out, [tmp_path]) == ["a.txt", "logs/run.log"]


def test_compare_trees_and_readable_differences(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for side, text in ((one, "same\nfirst line\n"), (two, "same\nsecond line\n")):
        (side / "logs").mkdir(parents=True)
        (side / "notes.txt").write_text(text)
        (side / "logs/t.log").write_text(f"{side}\n")
        (side / "lib.a").write_bytes(b"!<arch>\n" + ar_member("x.o", b"\0obj " + side.name.encode() * 4)
                                     + ar_member("y.o", b"\0same"))
    (two / "extra").write_text("new\n")
    diff = compare_trees(one, two, ["logs"])
    assert (diff.differ, diff.only_first, diff.only_second) == (["lib.a", "notes.txt"], [], ["extra"])
    assert explain_difference(one / "notes.txt", two / "notes.txt") == ["-first line", "+second line"]
    archive = explain_difference(one / "lib.a", two / "lib.a")
    assert archive[0] == "archive member differs: x.o" and "oneoneoneone" in archive[1]


def ar_member(name: str, data: bytes) -> bytes:
    header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{644:<8}{len(data):<10}`\n".encode()
    return header + data + (b"\n" if len(data) % 2 else b"")


def test_a_task_with_every_file_exempt_is_not_compared_not_reproducible() -> None:
    results = [TaskResult("all-exempt", TreeDiff([], [], [], compared=0, left_out=3), {}),
               TaskResult("empty", TreeDiff([], [], [], compared=0), {}),
               TaskResult("lib", TreeDiff([], [], [], compared=2, left_out=1), {})]
    lines = report(results)
    assert "  not compared  all-exempt: every file (3) is declared unreproducible" in lines
    assert "  not compared  empty: it has no output files" in lines
    assert "  same     lib (2 files, 1 declared unreproducible)" in lines
    assert lines[-1] == "reproducible: 1/3 tasks, 2 not compared, 0 files differ"


def committed(project: Project) -> str:
    git = ["git", "-C", str(project.root), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "fixture"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def kept_second_build(tmp_path: Path, origin: dict[str, object] | None) -> Path:
    scratch = tmp_path / "kept"
    (scratch / DEEPER / "build").mkdir(parents=True)
    if origin is not None:
        (scratch / SECOND_ORIGIN).write_text(json.dumps(origin))
    return scratch


def test_reuse_refuses_a_second_build_of_another_commit(project: Project, tmp_path: Path) -> None:
    head = committed(project)
    other = "0" * 40
    scratch = kept_second_build(tmp_path, {"commit": other, "dirty": False})
    proc = project.cli("repro", "hello", "--reuse", str(scratch), check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: --reuse {scratch}: its second build was made from commit {other[:12]}, this checkout is at "
        f"commit {head[:12]}: the builds of two commits cannot be compared"]
    assert not (project.root / "build/hello").exists(), "refused before building anything"


def test_reuse_refuses_a_second_build_without_its_commit(project: Project, tmp_path: Path) -> None:
    committed(project)
    scratch = kept_second_build(tmp_path, None)
    proc = project.cli("repro", "hello", "--reuse", str(scratch), check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: --reuse {scratch}: no record of the commit its second build was made from "
        f"({SECOND_ORIGIN}): run `repro --keep` again"]
