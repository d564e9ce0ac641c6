"""The no-op path reuses the last run's graph and keys only while everything they came from is unchanged."""

from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import Project

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
