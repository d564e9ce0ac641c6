"""pipeline.wasmbuild.regrtest: per-module counts from JUnit XML, and the verdict test_cpython and
test_numpy rely on: an unlisted failure or a crashed module fails; listed failures do not.

The reports are written in the two shapes the chain produces: CPython's regrtest (the full dotted
id as `name`, no classname) and pytest (`classname` + `name`, with parameter ids in brackets).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from pipeline.wasmbuild import regrtest

REGRTEST_XML = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="test_alpha" tests="4">
 <testcase name="test.test_alpha.Things.test_ok" status="run" result="completed" time="0.01"/>
 <testcase name="test.test_alpha.Things.test_also_ok" status="run" result="completed" time="0.01"/>
 <testcase name="test.test_alpha.Things.test_known" status="run" result="completed" time="0.01">
  <failure type="AssertionError" message="known">Traceback ...</failure></testcase>
 <testcase name="test.test_alpha.Things.test_skipped" status="run" result="completed" time="0">
  <skipped message="not on wasi"/></testcase>
</testsuite></testsuites>
"""

PYTEST_XML = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="3">
 <testcase classname="test_beta.TestIO" name="test_nan[string-period]" time="0.1">
  <failure message="OSError: [Errno 95] Operation not supported">...</failure></testcase>
 <testcase classname="test_beta.TestIO" name="test_nan[string-comma]" time="0.1"/>
 <testcase classname="test_beta.TestIO" name="test_inf[string-period]" time="0.1">
  <error message="OSError">...</error></testcase>
</testsuite></testsuites>
"""


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    (tmp_path / "test_alpha.xml").write_text(REGRTEST_XML)
    (tmp_path / "test_beta.xml").write_text(PYTEST_XML)
    return tmp_path


def verdict(reports: Path, expected: list[str], modules: list[str] | None = None) -> tuple[int, dict, str]:
    (reports / "expected.txt").write_text("# known failures\n" + "".join(f"{line}\n" for line in expected))
    argv = [str(reports / "test_alpha.xml"), str(reports / "test_beta.xml"), "--json", str(reports / "summary.json"),
            "--expected-failures", str(reports / "expected.txt")]
    if modules is not None:
        (reports / "modules.txt").write_text("".join(f"{m}\n" for m in modules))
        argv += ["--modules", str(reports / "modules.txt")]
    proc = subprocess.run([sys.executable, "-m", "pipeline.wasmbuild.regrtest", *argv], cwd=REPO,
                          capture_output=True, text=True, check=False, timeout=60)
    return proc.returncode, json.loads((reports / "summary.json").read_text()), proc.stdout


ALL_KNOWN = ["test.test_alpha.Things.test_known", "test_beta.TestIO.test_nan[string-period]",
             "test_beta.TestIO.test_inf[string-period]"]


def test_listed_failures_pass_and_are_counted_per_module(reports: Path) -> None:
    code, summary, out = verdict(reports, ALL_KNOWN, ["test_alpha", "test_beta"])
    assert code == 0, out
    assert summary["modules"] == {"test_alpha": {"passed": 2, "failed": 1, "skipped": 1},
                                  "test_beta": {"passed": 1, "failed": 2}}
    assert summary["unexpected"] == []
    assert "FAILED test_beta.TestIO.test_nan[string-period]   (known failure, listed)" in out
    assert "2 modules: 3 passed, 3 failed, 1 skipped" in out


def test_an_unlisted_failure_fails(reports: Path) -> None:
    code, summary, out = verdict(reports, ALL_KNOWN[:2])  # the <error> case is not listed
    assert code == 1
    assert summary["unexpected"] == ["test_beta.TestIO.test_inf[string-period]"]
    assert re.search(r"^FAILED test_beta\.TestIO\.test_inf\[string-period\]$", out, re.M), out


def test_a_listed_id_covers_that_parameter_case_only(reports: Path) -> None:
    """Brackets in a pytest id are literal: listing [string-comma] does not excuse [string-period]."""
    code, summary, _ = verdict(reports, ["test.test_alpha.Things.test_known", "test_beta.TestIO.test_nan[string-comma]",
                                         "test_beta.TestIO.test_inf[string-period]"])
    assert code == 1 and summary["unexpected"] == ["test_beta.TestIO.test_nan[string-period]"]


def test_a_module_without_a_report_is_a_crash_and_fails(reports: Path) -> None:
    code, summary, out = verdict(reports, ALL_KNOWN, ["test_alpha", "test_beta", "test_gamma"])
    assert code == 1
    assert summary["unexpected"] == ["test_gamma (crashed: no report)"]
    assert summary["modules"]["test_gamma"] == {"failed": 1}
    assert "FAILED test_gamma (crashed: no report)" in out


def test_fnmatch_patterns_still_match(reports: Path) -> None:
    code, summary, _ = verdict(reports, ["*.Things.test_known", "test_beta.TestIO.test_*[[]string-period]"])
    assert code == 0 and summary["unexpected"] == []


EXPECTED_LISTS = sorted((REPO / "recipes" / "tests").glob("*_expected_failures.txt"))


@pytest.mark.parametrize("listing", EXPECTED_LISTS, ids=lambda p: p.name)
def test_expected_failures_name_tests_not_whole_classes(listing: Path) -> None:
    """A pattern ending in `.*` excuses a whole class (or module): allowed only under a comment that
    says `whole class:` and why every test in it fails for one cause."""
    reason: list[str] = []  # the comment block the entries below it belong to
    offenders = []
    after_comment = False
    for line in listing.read_text().splitlines():
        if line.startswith("#"):
            reason = [*reason, line] if after_comment else [line]
            after_comment = True
            continue
        after_comment = False
        entry = line.split("#", 1)[0].strip()
        if not entry:
            reason = []
        elif entry.endswith(".*") and "whole class:" not in " ".join(reason):
            offenders.append(entry)
    assert offenders == [], f"{listing.name}: class-wide wildcards without a 'whole class:' reason"
    assert regrtest.read_patterns(listing), "the listing parses to patterns"
