"""Run a list of test modules (or paths) inside python.wasm, several at once, and report.

    python -m pipeline.wasmbuild.guesttests --tests cpython_tests.txt --wasm python.wasm \\
        --dir "$RT::/" --out "$OUT" --work "$WORK" --jobs "$JOBS" \\
        --expected-failures cpython_expected_failures.txt \\
        -- -m test --junit-xml /tmp/{report}.xml {item}

One interpreter per item (WASI has no subprocesses, and one test module can leave an
interpreter unfit for the next), --jobs at a time. Each item gets its own host directory
as the guest's /tmp (TMPDIR and HOME point there: tests clean up after themselves in it)
and writes its JUnit report to /tmp/{report}.xml, {report} being the item with `/` made
`_` and `.py` dropped. Then, in --out:

    logs/<report>.log    the guest's output
    junit/<report>.xml   its report; an item with none crashed (trap, exit mid-run)
    summary.txt, .json   passed/failed/skipped per item (pipeline.wasmbuild.regrtest)

Exit status 1 when any failure is not listed in --expected-failures, else 0.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import ExitCode, PipelineError, report_error
from ..files import write_atomic
from ..runtime import wasm
from .regrtest import RunSummary, read_patterns, summarize_run

GUEST_TMP = "/tmp"
# Runs a .wasm with --dir HOST::GUEST and --env K=V options, like the recipes' {{ run_wasm }}.
DEFAULT_RUNNER = (sys.executable, "-m", wasm.__name__, "run")


def report_name(item: str) -> str:
    """`numpy/core/tests/test_umath.py` -> `numpy_core_tests_test_umath`; `test_os` stays."""
    return item.replace("/", "_").removesuffix(".py")


@dataclass(frozen=True)
class GuestTests:
    """One parallel run: the same python.wasm and mounts for every item."""

    wasm: Path
    guest_args: tuple[str, ...]  # with {item} and {report} placeholders
    out: Path
    work: Path
    dirs: tuple[str, ...] = ()  # HOST::GUEST
    env: tuple[str, ...] = ()  # K=V
    runner: tuple[str, ...] = DEFAULT_RUNNER

    def argv(self, args: list[str], extra_dirs: tuple[str, ...] = (), extra_env: tuple[str, ...] = ()) -> list[str]:
        dirs = (f"--dir={d}" for d in (*self.dirs, *extra_dirs))
        env = (f"--env={e}" for e in (*extra_env, *self.env))
        return [*self.runner, *dirs, *env, str(self.wasm), *args]

    def warm(self) -> None:
        """Compile python.wasm once (the runner's content-keyed machine-code cache) before
        --jobs interpreters would each compile it at once."""
        proc = subprocess.run(self.argv(["-c", "pass"]), capture_output=True, text=True, check=False)
        if proc.returncode:
            raise PipelineError(f"{self.wasm} does not start ({proc.returncode}): {proc.stderr.strip()[-2000:]}")

    def run_one(self, item: str) -> int:
        report = report_name(item)
        tmp = self.work / "tmp" / report
        tmp.mkdir(parents=True, exist_ok=True)
        args = [arg.format(item=item, report=report) for arg in self.guest_args]
        argv = self.argv(args, (f"{tmp}::{GUEST_TMP}",), (f"TMPDIR={GUEST_TMP}", f"HOME={GUEST_TMP}"))
        with open(self.out / "logs" / f"{report}.log", "wb") as log:
            code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  check=False).returncode
        junit = tmp / f"{report}.xml"
        if junit.is_file():
            shutil.copyfile(junit, self.out / "junit" / junit.name)
        return code

    def run(self, items: list[str], jobs: int, expected: list[str]) -> RunSummary:
        for folder in ("logs", "junit"):
            (self.out / folder).mkdir(parents=True, exist_ok=True)
        self.warm()
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            # A failing item is counted from its report (or its missing report), not from its exit code.
            list(pool.map(self.run_one, items))
        reports = [self.out / "junit" / f"{report_name(item)}.xml" for item in items]
        summary = summarize_run(reports, [report_name(item) for item in items], expected)
        write_atomic(self.out / "summary.txt", summary.table())
        write_atomic(self.out / "summary.json", summary.as_json())
        return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.wasmbuild.guesttests", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", type=Path, required=True, help="the items to run, one a line (# comments)")
    parser.add_argument("--wasm", type=Path, required=True, help="the python.wasm to run them in")
    parser.add_argument("--out", type=Path, required=True, help="logs/, junit/ and the summary go here")
    parser.add_argument("--work", type=Path, required=True, help="scratch: each item's /tmp")
    parser.add_argument("--jobs", type=int, default=1, help="interpreters at once")
    parser.add_argument("--dir", action="append", default=[], metavar="HOST::GUEST", help="a mount for every item")
    parser.add_argument("--env", action="append", default=[], metavar="K=V", help="guest environment, every item")
    parser.add_argument("--expected-failures", type=Path, help="fnmatch patterns of known failures, one a line")
    parser.add_argument("--runner", default=shlex.join(DEFAULT_RUNNER),
                        help="the command that runs a .wasm with --dir/--env options (default: %(default)s)")
    parser.add_argument("guest_args", nargs="+", metavar="-- GUEST-ARGS",
                        help="python.wasm's arguments per item; {item} and {report} are filled in")
    args = parser.parse_args(argv)
    try:
        items = read_patterns(args.tests)
        if not items:
            raise PipelineError(f"--tests {args.tests}: no items in it")
        tests = GuestTests(args.wasm, tuple(args.guest_args), args.out, args.work, tuple(args.dir), tuple(args.env),
                           tuple(shlex.split(args.runner)))
        summary = tests.run(items, args.jobs, read_patterns(args.expected_failures))
    except (PipelineError, OSError) as exc:
        return report_error(exc)
    print(summary.table(), end="")
    return int(ExitCode.FAILED if summary.unexpected else ExitCode.OK)


if __name__ == "__main__":
    raise SystemExit(main())
