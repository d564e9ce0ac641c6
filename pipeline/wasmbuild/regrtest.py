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
from fnmatch import fnmatch
from pathlib import Path


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.wasmbuild.regrtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", type=Path, nargs="+", help="JUnit XML files (one per test module)")
    parser.add_argument("--modules", type=Path, help="the modules that were run; one without a report crashed")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--expected-failures", type=Path, help="fnmatch patterns of known failures, one a line")
    args = parser.parse_args(argv)
    per_module, failed = summarize([r for r in args.reports if r.exists()])
    for module in read_patterns(args.modules):
        if module not in per_module:  # no report: the interpreter died (trap, exit) mid-module
            per_module[module] = Counter(failed=1)
            failed.append(f"{module} (crashed: no report)")
    expected = read_patterns(args.expected_failures)
    total: Counter[str] = Counter()
    width = max([24, *(len(module) for module in per_module)])
    print(f"{'module':<{width}} {'passed':>7} {'failed':>7} {'skipped':>8}")
    for module in sorted(per_module):
        counts = per_module[module]
        total.update(counts)
        print(f"{module:<{width}} {counts['passed']:>7} {counts['failed']:>7} {counts['skipped']:>8}")
    ran = total["passed"] + total["failed"]
    rate = 100.0 * total["passed"] / ran if ran else 0.0
    print(f"{len(per_module)} modules: {total['passed']} passed, {total['failed']} failed, "
          f"{total['skipped']} skipped; pass rate {rate:.2f}% of tests run")
    # an exact id first: pytest ids hold brackets (test_nan[string-period]), which fnmatch reads as a set
    unexpected = [t for t in failed if t not in expected and not any(fnmatch(t, pattern) for pattern in expected)]
    for test in failed:
        print(f"FAILED {test}" + ("" if test in unexpected else "   (known failure, listed)"))
    if args.json:
        summary = {"modules": per_module, "total": total, "pass_rate": rate, "failed": failed,
                   "unexpected": unexpected}
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
