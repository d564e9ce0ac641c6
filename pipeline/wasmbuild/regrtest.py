"""Summarise a CPython regrtest JUnit XML report: passed/failed/skipped per test module.

    python -m pipeline.wasmbuild.regrtest REPORT.xml... [--modules FILE] [--json summary.json]
        [--expected-failures FILE]

Every failure is printed. Exit status 1 if any test failed that is not listed (exact `classname.name`, or an fnmatch
pattern over it) in the expected-failures file.
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from ..files import write_atomic


def summarize(reports: list[Path]) -> tuple[dict[str, Counter[str]], list[str]]:
    """Counts per module (one report per test module, named after it), and failed test ids."""
    per_module: dict[str, Counter[str]] = {}
    failed: list[str] = []
    cases = [(report.stem, case) for report in reports for case in ET.parse(report).getroot().iter("testcase")]
    for module, case in cases:
        # regrtest writes the full dotted id as `name`; other writers split it.
        test_id = ".".join(part for part in (case.get("classname"), case.get("name", "?")) if part)
        counts = per_module.setdefault(module, Counter())
        if case.find("skipped") is not None:
            counts["skipped"] += 1
        elif case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
            failed.append(test_id)
        else:
            counts["passed"] += 1
    return per_module, failed


def read_patterns(path: Path | None) -> list[str]:
    if path is None:
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


@dataclass
class RunSummary:
    """Per-module counts of one test run, its failures, and those not expected."""

    per_module: dict[str, Counter[str]]
    failed: list[str]
    unexpected: list[str]

    def table(self) -> str:
        """The per-module table, the totals and every failure, as printed."""
        total: Counter[str] = Counter()
        width = max([24, *(len(module) for module in self.per_module)])
        lines = [f"{'module':<{width}} {'passed':>7} {'failed':>7} {'skipped':>8}"]
        for module in sorted(self.per_module):
            counts = self.per_module[module]
            total.update(counts)
            lines.append(f"{module:<{width}} {counts['passed']:>7} {counts['failed']:>7} {counts['skipped']:>8}")
        lines.append(f"{len(self.per_module)} modules: {total['passed']} passed, {total['failed']} failed, "
                     f"{total['skipped']} skipped; pass rate {self.pass_rate():.2f}% of tests run")
        lines += [f"FAILED {test}" + ("" if test in self.unexpected else "   (known failure, listed)")
                  for test in self.failed]
        return "\n".join(lines) + "\n"

    def totals(self) -> Counter[str]:
        return sum(self.per_module.values(), Counter())

    def pass_rate(self) -> float:
        total = self.totals()
        ran = total["passed"] + total["failed"]
        return 100.0 * total["passed"] / ran if ran else 0.0

    def as_json(self) -> str:
        summary = {"modules": self.per_module, "total": self.totals(), "pass_rate": self.pass_rate(),
                   "failed": self.failed, "unexpected": self.unexpected}
        return json.dumps(summary, indent=1) + "\n"


def summarize_run(reports: list[Path], modules: list[str], expected: list[str]) -> RunSummary:
    """`modules`: what was run; one without a report crashed (a trap, an exit mid-module)."""
    per_module, failed = summarize([r for r in reports if r.exists()])
    for module in modules:
        if module not in per_module:
            per_module[module] = Counter(failed=1)
            failed.append(f"{module} (crashed: no report)")
    # an exact id first: pytest ids hold brackets (test_nan[string-period]), which fnmatch reads as a set
    unexpected = [t for t in failed if t not in expected and not any(fnmatch(t, pattern) for pattern in expected)]
    return RunSummary(per_module, failed, unexpected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.wasmbuild.regrtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", type=Path, nargs="+", help="JUnit XML files (one per test module)")
    parser.add_argument("--modules", type=Path, help="the modules that were run; one without a report crashed")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--expected-failures", type=Path, help="fnmatch patterns of known failures, one a line")
    args = parser.parse_args(argv)
    run = summarize_run(args.reports, read_patterns(args.modules), read_patterns(args.expected_failures))
    print(run.table(), end="")
    if args.json:
        write_atomic(args.json, run.as_json())
    return 1 if run.unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
