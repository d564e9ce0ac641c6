"""Relocatable, reproducible outputs: the same inputs give the same bytes in any directory,
and a toolchain restored from the cache into another checkout uses that checkout's sysroot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO, Project, make_project

from pipeline.engine.outputs import compare_trees, path_leaks
from pipeline.engine.repro import explain_difference

needs_llvm = pytest.mark.skipif(shutil.which("clang-19") is None, reason="needs LLVM 19 (the toolchain's packages)")


def relocatable_project(tmp_path: Path, name: str, cache: Path) -> Project:
    project = make_project(tmp_path / name, "relocatable")
    shutil.copytree(REPO / "toolchain", project.root / "toolchain")
    return Project(project.root, cache)


@needs_llvm
def test_repro_builds_the_program_again_at_another_path_and_finds_it_the_same(tmp_path: Path) -> None:
    project = relocatable_project(tmp_path, "one", tmp_path / "cache")
    proc = project.cli("repro", "program", "--keep", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reproducible: 3/3 tasks, 0 files differ" in proc.stdout
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
