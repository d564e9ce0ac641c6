"""The one atomic write (pipeline.files): all of the new file or none of it, never a leftover."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from pipeline.files import atomic_path, write_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    dest = tmp_path / "out.json"
    write_atomic(dest, "old\n")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer died")
    assert dest.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_another_process_fills_the_path_and_the_mode_is_applied(tmp_path: Path) -> None:
    dest = tmp_path / "bin" / "tool"
    with atomic_path(dest, mode=0o755) as tmp:
        subprocess.run(["cp", "/bin/true", str(tmp)], check=True)
        assert not dest.exists(), "nothing is visible before the block ends"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    subprocess.run([str(dest)], check=True)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["tool"]
