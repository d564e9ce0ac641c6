"""docs/claims.md maps every claim marked in the user docs (`<!-- claim: ID -->`) to the tests that prove it.

The user docs: README.md and the design document it links (docs/design.md), where the promises
about keys, atomicity and the cache are written out.

Fails when a marked claim has no row, a row names no test or a test function that does not exist,
or a row's claim is no longer marked in the README.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

MARKER = re.compile(r"<!--\s*claim:\s*([a-z0-9][a-z0-9-]*)\s*-->")
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|(.*)\|\s*$")
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
