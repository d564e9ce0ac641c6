"""docs/claims.md maps every claim marked in the user docs (`<!-- claim: ID -->`) to the tests that prove it.

The user docs: README.md and the design document it links (docs/design.md), where the promises
about keys, atomicity and the cache are written out.

Fails when a marked claim has no row, a row names no test or a test function that does not exist,
or a row's claim is no longer marked in the README; when a named test is not in the default run
(`./dev test`: pytest with no -m) or is skipped there by a marker; and when a figure the row
promises (56 modules, exit 3, 0.2 s) is not a number in the code of any test the row names.
That last one is a tripwire, not a proof: it catches a figure changed on one side only.
"""

from __future__ import annotations

import ast
import io
import json
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
from conftest import REPO

MARKER = re.compile(r"<!--\s*claim:\s*([a-z0-9][a-z0-9-]*)\s*-->")
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|(.*)\|\s*$")
PROMISE = re.compile(r"^\|\s*`([^`]+)`\s*\|([^|]*)\|")  # the row's "what the README promises" column
FIGURE = re.compile(r"(?<![\w.\-/=])\d+(?:\.\d+)?(?!\w)")  # 56, 0.2; not wasm32, sha256 or =1
TEST_REF = re.compile(r"`(tests/test_\w+\.py)::(test_\w+)`")


def readme_claims(text: str) -> list[str]:
    return MARKER.findall(text)


def table_rows(text: str) -> dict[str, list[tuple[str, str]]]:
    """claim id -> [(test file, test function)], from the markdown table."""
    rows: dict[str, list[tuple[str, str]]] = {}
    for line in text.splitlines():
        match = ROW.match(line)
        if match:
            assert match.group(1) not in rows, f"claim {match.group(1)} has two rows"
            rows[match.group(1)] = TEST_REF.findall(match.group(2))
    return rows


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def numbers_in_test(path: Path, name: str) -> set[float]:
    """The number literals in the code of test function `name` (comments and strings do not count)."""
    text = path.read_text()
    node = next(n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == name)
    source = ast.get_source_segment(text, node) or ""
    return {float(tok.string) for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.NUMBER and not tok.string.lower().startswith(("0x", "0o", "0b"))}


def unchecked_figures(table: str, root: Path) -> list[str]:
    """Figures a row promises that no test it names has as a number."""
    found = []
    rows = table_rows(table)
    for line in table.splitlines():
        match = PROMISE.match(line)
        if not match or match.group(1) not in rows:
            continue
        claim = match.group(1)
        numbers = set().union(*(numbers_in_test(root / file, name) for file, name in rows[claim]
                                if (root / file).is_file() and name in defined_tests(root / file)))
        found += [f"row {claim}: no test it names checks the figure {figure}"
                  for figure in FIGURE.findall(match.group(2)) if float(figure) not in numbers]
    return found


# Loaded into a collect-only default run: what it collects, and which of those a marker skips.
COLLECTOR = """
import json, os
from _pytest.skipping import evaluate_skip_marks

def pytest_collection_finish(session):
    found = {}
    for item in session.items:
        skip = evaluate_skip_marks(item)
        found[item.nodeid] = skip.reason if skip else None
    with open(os.environ["CLAIMS_COLLECTED"], "w") as out:
        json.dump(found, out)
"""


def default_run(where: Path) -> dict[str, str | None]:
    """Every test the default run (`./dev test`: pytest, no -m) collects -> why a marker skips it, or None."""
    (where / "claims_collector.py").write_text(COLLECTOR)
    out = where / "collected.json"
    ran = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "claims_collector"], cwd=REPO,
                         env={"PYTHONPATH": f"{where}:{REPO}", "CLAIMS_COLLECTED": str(out), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    return json.loads(out.read_text())


def not_in_default_run(table: str, collected: dict[str, str | None]) -> list[str]:
    found = []
    for claim, tests in table_rows(table).items():
        for file, name in tests:
            ref = f"{file}::{name}"
            items = [node for node in collected if node == ref or node.startswith(ref + "[")]
            if not items:
                found.append(f"row {claim}: {ref} is not collected by the default run")
            found += [f"row {claim}: {node} is skipped by a marker ({collected[node]})"
                      for node in items if collected[node] is not None]
    return found


def problems(readme: str, table: str, root: Path) -> list[str]:
    found: list[str] = []
    claims = readme_claims(readme)
    found += [f"claim {c} is marked twice in the README" for c in sorted({c for c in claims if claims.count(c) > 1})]
    rows = table_rows(table)
    found += [f"claim {c} has no row in docs/claims.md" for c in claims if c not in rows]
    found += [f"row {c} is not a claim marked in the README" for c in rows if c not in claims]
    for claim, tests in rows.items():
        if not tests:
            found.append(f"row {claim} names no test")
        for file, name in tests:
            if not (root / file).is_file():
                found.append(f"row {claim}: {file} does not exist")
            elif name not in defined_tests(root / file):
                found.append(f"row {claim}: {file} has no test function {name}")
    return found


CLAIM_DOCS = ("README.md", "docs/design.md")


def marked_docs() -> str:
    return "\n".join((REPO / doc).read_text() for doc in CLAIM_DOCS)


def test_every_readme_claim_has_a_row_naming_existing_tests() -> None:
    readme = marked_docs()
    assert len(readme_claims(readme)) >= 40, "the README's claims are marked"
    assert problems(readme, (REPO / "docs" / "claims.md").read_text(), REPO) == []


def test_the_check_catches_a_missing_row_a_stale_row_and_a_missing_test() -> None:
    readme = marked_docs()
    table = (REPO / "docs" / "claims.md").read_text()
    unmarked = readme + "\n<!-- claim: brand-new-promise -->\nA new promise.\n"
    assert problems(unmarked, table, REPO) == ["claim brand-new-promise has no row in docs/claims.md"]
    first = readme_claims(readme)[0]
    assert problems(readme.replace(f"<!-- claim: {first} -->", ""), table, REPO) == [
        f"row {first} is not a claim marked in the README"]
    renamed = table.replace("::test_prune_evicts_least_recently_used_first`", "::test_prune_is_lru`")
    assert problems(readme, renamed, REPO) == [
        "row cli-prune: tests/test_engine.py has no test function test_prune_is_lru"]


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    return default_run(tmp_path_factory.mktemp("claims"))


def test_every_named_test_runs_by_default_and_every_figure_is_checked(collected: dict[str, str | None]) -> None:
    table = (REPO / "docs" / "claims.md").read_text()
    assert not_in_default_run(table, collected) == []
    assert unchecked_figures(table, REPO) == []


def test_the_check_catches_a_deselected_or_skipped_test_and_an_unchecked_figure(
    collected: dict[str, str | None],
) -> None:
    table = (REPO / "docs" / "claims.md").read_text()
    ref = "tests/test_engine.py::test_prune_bounds_the_cache"
    assert not_in_default_run(table, {node: why for node, why in collected.items() if node != ref}) == [
        f"row cli-prune: {ref} is not collected by the default run"]
    assert not_in_default_run(table, {**collected, ref: "no disk"}) == [
        f"row cli-prune: {ref} is skipped by a marker (no disk)"]
    changed = table.replace("exit 124 for that call", "exit 125 for that call")
    assert unchecked_figures(changed, REPO) == ["row faasm-timeout: no test it names checks the figure 125"]
