"""The no-op path reuses the last run's graph and keys only while everything they came from is unchanged."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import Project

from pipeline.digests import RACY_NS
from pipeline.engine.memo import Memo, Witness, load_memo, save_memo
from pipeline.paths import Paths

# doit in-process, then report which heavy modules the run imported
PROBE = (
    "import sys\n"
    "from doit.doit_cmd import DoitMain\n"
    "from doit.cmd_base import DodoTaskLoader\n"
    "code = DoitMain(DodoTaskLoader()).run(sys.argv[1:])\n"
    "print('IMPORTED', sorted(m for m in ('pydantic', 'jinja2', 'yaml') if m in sys.modules), file=sys.stderr)\n"
    "raise SystemExit(code)\n"
)


def probe(project: Project, *args: str, **env: str) -> tuple[str, str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=project.root, env=project.env(**env),
                          capture_output=True, text=True, check=True)
    imported = next(line for line in proc.stderr.splitlines() if line.startswith("IMPORTED"))
    return proc.stdout, imported


def test_noop_takes_the_memo_and_imports_no_validation_or_templating(project: Project) -> None:
    project.doit()
    project.runs()
    out, imported = probe(project)
    assert "3 up to date" in out
    assert imported == "IMPORTED []", "a no-op must not validate or render recipes"
    assert project.runs() == []


def test_a_new_file_in_a_source_folder_is_seen(project: Project) -> None:
    project.doit()
    project.runs()
    (project.root / "src" / "extra.txt").write_text("a new file changes the source tree's digest\n")
    _, imported = probe(project)
    assert "pydantic" in imported, "the memo must not hold once a walked folder changed"
    assert sorted(project.runs()) == ["greeting", "hello"]


def test_edited_recipe_or_other_cache_dir_loads_in_full(project: Project, tmp_path) -> None:
    project.doit()
    project.runs()
    project.edit("standalone", 'echo "{{ version }}"', 'echo "{{ version }}" ')
    _, imported = probe(project)
    assert "pydantic" in imported
    assert project.runs() == ["standalone"], "the edited recipe's step ran again, and only it"
    _, imported = probe(project)
    assert imported == "IMPORTED []", "the memo is written again after a full load"
    assert project.runs() == []
    _, imported = probe(project, PIPELINE_CACHE_DIR=str(tmp_path / "other-cache"))
    assert "pydantic" in imported, "another cache dir changes paths in keys and templates"


def test_a_copied_checkout_does_not_trust_the_originals_memo(project: Project, tmp_path) -> None:
    project.doit()
    copy = Project(tmp_path / "copy", project.cache)
    shutil.copytree(project.root, copy.root, symlinks=True)
    (copy.root / "src" / "hello.c").write_text((copy.root / "src" / "hello.c").read_text().replace(
        "from a fixture", "from a fixture copy"))
    copy.doit()
    assert "from a fixture copy" in (copy.root / "build/greeting/greeting.txt").read_text()


def test_a_racily_clean_file_is_not_trusted_by_the_memo(tmp_path: Path) -> None:
    """A file written within a clock tick of the memo's save could be written again in that tick
    with every stat fact the same: the memo records it as untrusted, and the next run loads in
    full. A tick later it is trusted."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("version: 1\n")
    paths = Paths(tmp_path, tmp_path / "cache")
    witness = Witness.empty()
    witness.saw_file(str(recipe))
    ctime = recipe.stat().st_ctime_ns
    memo = Memo(order=("a",), deps={"a": ()}, docs={"a": ""}, keys={"a": "k"}, test_keys={"a": None}, workers=1,
                cache="c")
    save_memo(paths, memo, witness, now_ns=ctime + 1_000_000)  # saved in the tick it was written
    assert load_memo(paths) is None, "a racily clean file's stat must not vouch for the memo"
    save_memo(paths, memo, witness, now_ns=ctime + 10 * RACY_NS)
    loaded = load_memo(paths)
    assert loaded is not None and loaded[0] == memo
