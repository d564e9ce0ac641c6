"""Relocatable outputs: no absolute path of the checkout in what a build step leaves behind.

    python -m pipeline.wasmbuild.relocate --root "$PROJECT_ROOT" PATH...

Compilers map the checkout away themselves (-ffile-prefix-map, in the toolchain's `tc.cc`
and wrappers). What remains are build systems that record their own configuration as text:
CPython's sysconfig data and Makefile, meson's `__config__.py`. This tool rewrites the
checkout's path in such text files to the token `@PROJECT_ROOT@` (the same idea as the keys'
`@ROOT@`) and fails on a binary file that still holds it, naming it: a binary can only be
fixed where it is made.

A folder is searched whole. A wheel (`*.whl`) is rewritten member by member, and its RECORD
gets the new digests, so that installing it gives relocatable files.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import zipfile
from pathlib import Path

from ..errors import PipelineError, report_error
from ..files import write_atomic

TOKEN = b"@PROJECT_ROOT@"


class BinaryHoldsPath(PipelineError):
    """A binary file holds the checkout's path: only its build can fix that."""


def is_text(data: bytes) -> bool:
    return b"\0" not in data


def rewrite(data: bytes, root: bytes, name: str) -> bytes | None:
    """`data` with the checkout's path replaced, or None when it holds none."""
    if root not in data:
        return None
    if not is_text(data):
        raise BinaryHoldsPath(f"{name}: a binary file holds the checkout's path {root.decode()!r}")
    return data.replace(root, TOKEN)


def relocate_file(path: Path, root: bytes) -> bool:
    new = rewrite(path.read_bytes(), root, str(path))
    if new is None:
        return False
    write_atomic(path, new, mode=path.stat().st_mode & 0o7777)
    return True


def record_digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def relocate_wheel(wheel: Path, root: bytes) -> list[str]:
    """Rewrite the wheel's text members in place (RECORD updated); the names rewritten."""
    with zipfile.ZipFile(wheel) as old:
        members = [(info, old.read(info)) for info in old.infolist()]
    changed: dict[str, bytes] = {}
    for info, data in members:
        new = rewrite(data, root, f"{wheel.name}:{info.filename}")
        if new is not None:
            changed[info.filename] = new
    if not changed:
        return []
    record_name = next(info.filename for info, _ in members if info.filename.endswith(".dist-info/RECORD"))
    lines = []
    for line in next(data for info, data in members if info.filename == record_name).decode().splitlines():
        name = line.split(",", 1)[0]
        lines.append(f"{name},{record_digest(changed[name])},{len(changed[name])}" if name in changed else line)
    changed[record_name] = ("\n".join(lines) + "\n").encode()
    staged = wheel.with_suffix(".relocating")
    with zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as new_wheel:
        for info, data in members:
            new_wheel.writestr(info, changed.get(info.filename, data))
    staged.replace(wheel)
    return sorted(set(changed) - {record_name})


def relocate(paths: list[Path], root: Path) -> list[str]:
    """Every file under `paths` made free of `root`; the ones rewritten."""
    marker = str(root).rstrip("/").encode()
    done = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()) if path.is_dir() else [path]
        for file in files:
            if file.suffix == ".whl":
                done += [f"{file}:{name}" for name in relocate_wheel(file, marker)]
            elif relocate_file(file, marker):
                done.append(str(file))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.wasmbuild.relocate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="the checkout whose path must not remain")
    parser.add_argument("paths", type=Path, nargs="+", help="files, folders or wheels to rewrite")
    args = parser.parse_args(argv)
    try:
        for name in relocate(args.paths, args.root):
            print(f"relocated: {name}")
    except PipelineError as exc:
        return report_error(exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
