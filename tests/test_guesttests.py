"""The one guest-test harness (test_cpython, test_numpy), driven through its CLI with a real tiny runner.

The runner stands in for `python -m pipeline.runtime.wasm run`: it takes the same --dir and
--env options, then the .wasm and the guest's arguments, and plays a test module that
writes a JUnit report to the guest path it is given (so mounts are really followed).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from conftest import REPO

from pipeline.errors import ExitCode
from pipeline.wasmbuild.guesttests import report_name

RUNNER = r'''
import os, sys, time
args = sys.argv[1:]
dirs, env = {}, {}
while args[0].startswith("--"):
    option = args.pop(0)
    name, value = option[2:].split("=", 1)
    if name == "dir":
        host, guest = value.split("::")
        dirs[guest] = host
    else:
        key, val = value.split("=", 1)
        env[key] = val
wasm, guest_args = args[0], args[1:]
assert os.path.isfile(wasm), wasm
if guest_args == ["-c", "pass"]:
    sys.exit(0)
journal = os.path.join(dirs["/"], "journal.txt")
with open(journal, "a") as out:
    out.write(f"start {time.monotonic()}\n")
# wait (20 s at most) until a second item has started: with --jobs 2 one has, or soon will
for _ in range(2000):
    with open(journal) as seen:
        if seen.read().count("start") >= 2:
            break
    time.sleep(0.01)
item = guest_args[-1]
junit = guest_args[guest_args.index("--junit-xml") + 1]
host_junit = os.path.join(dirs[env["TMPDIR"]], os.path.relpath(junit, env["TMPDIR"]))
print("running", item, "HOME", env["HOME"], "extra", env.get("EXTRA"))
with open(journal, "a") as out:
    out.write(f"end {time.monotonic()}\n")
if "crash" in item:
    sys.exit(125)  # a trap: no report
failure = "<failure/>" if "fail" in item else ""
with open(host_junit, "w") as out:
    out.write(f'<testsuite><testcase classname="{item}" name="test_one">{failure}</testcase>'
              f'<testcase classname="{item}" name="test_two"><skipped/></testcase></testsuite>')
'''


def harness(tmp_path: Path, items: list[str], expected: list[str], jobs: int = 2) -> subprocess.CompletedProcess[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    (tmp_path / "python.wasm").write_bytes(b"\0asm")
    (tmp_path / "tests.txt").write_text("# a comment\n" + "".join(f"{item}\n" for item in items) + "\n")
    (tmp_path / "expected.txt").write_text("".join(f"{pattern}\n" for pattern in expected))
    return subprocess.run(
        [sys.executable, "-m", "pipeline.wasmbuild.guesttests", "--tests", str(tmp_path / "tests.txt"),
         "--wasm", str(tmp_path / "python.wasm"), "--dir", f"{root}::/", "--env", "EXTRA=yes",
         "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--jobs", str(jobs),
         "--expected-failures", str(tmp_path / "expected.txt"),
         "--runner", shlex.join([sys.executable, str(runner)]),
         "--", "-m", "test", "--junit-xml", "/tmp/{report}.xml", "{item}"],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=120,
    )


def test_every_item_runs_in_its_own_interpreter_in_parallel(tmp_path: Path) -> None:
    proc = harness(tmp_path, ["test_a", "pkg/tests/test_b.py", "test_c"], expected=[])
    assert proc.returncode == ExitCode.OK, proc.stdout + proc.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "junit").iterdir()) == ["pkg_tests_test_b.xml", "test_a.xml", "test_c.xml"]
    log = (out / "logs" / "pkg_tests_test_b.log").read_text()
    assert "running pkg/tests/test_b.py HOME /tmp extra yes" in log
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total"] == {"passed": 3, "skipped": 3}
    assert (out / "summary.txt").read_text() == proc.stdout
    # two at a time: the first two met (each waited for the other), never three
    events = [line.split() for line in (tmp_path / "root" / "journal.txt").read_text().splitlines()]
    running, most = 0, 0
    for kind, _ in sorted(events, key=lambda e: float(e[1])):
        running += 1 if kind == "start" else -1
        most = max(most, running)
    assert most == 2


def test_failures_and_crashes_fail_unless_expected(tmp_path: Path) -> None:
    proc = harness(tmp_path, ["test_ok", "test_fail", "test_crash"], expected=[], jobs=3)
    assert proc.returncode == ExitCode.FAILED
    assert "FAILED test_fail.test_one\n" in proc.stdout and "FAILED test_crash (crashed: no report)" in proc.stdout
    proc = harness(tmp_path / "again", ["test_ok", "test_fail", "test_crash"],
                   expected=["test_fail.*", "test_crash*"], jobs=3)
    assert proc.returncode == ExitCode.OK, proc.stdout
    assert "(known failure, listed)" in proc.stdout


def test_report_names() -> None:
    assert report_name("test_os") == "test_os"
    assert report_name("numpy/_core/tests/test_umath.py") == "numpy__core_tests_test_umath"
    assert report_name("numpy/linalg/tests") == "numpy_linalg_tests"
