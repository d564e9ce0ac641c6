"""Assemble the runtime root (what the guest sees as "/") and its release artifacts.

Layout of the root::

    bin/python.wasm
    lib/python<X.Y>/                 the stdlib (minus STDLIB_EXCLUDES), lib-dynload if any
    lib/python<X.Y>/site-packages/   merged from every --package DIR's site-packages/
    functions/                       copied from --functions

Files are copied, never linked (wasmtime does not follow links that leave a preopen).
Every file's origin (recipe, source sha256, license) goes into the manifest; the
tarball is byte-for-byte reproducible: sorted entries, owner 0, one mtime, normalised
modes, a gzip header with no name and no timestamp.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import stat
import subprocess
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from ..errors import PipelineError, report_error
from ..files import atomic_output, sha256_file
from .contracts import BuildInfo, ManifestEntry, Provenance, RuntimeManifest

# Top-level stdlib entries left out of the runtime root (fnmatch patterns).
# config-X.Y-<platform>: the static libpython and Makefile for building against it; 43 MB nobody runs.
STDLIB_EXCLUDES = frozenset({"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "config-*"})
STDLIB_DIR = re.compile(r"^python(?P<version>\d+\.\d+)$")
# Left out of every source tree: bytecode is regenerated with guest paths (--build-python).
EXCLUDED_EVERYWHERE = frozenset({"__pycache__"})
META_ROLES = ("python", "functions")
PACKAGE_META = "package.json"
DIR_MODE = 0o755
EXEC_MODE = 0o755
FILE_MODE = 0o644
_PYC = re.compile(r"^(?P<dir>(?:.*/)?)__pycache__/(?P<stem>[^/.]+)\.[^/]+\.pyc$")


class BundleError(PipelineError):
    """Bad input to the bundle step (conflicting files, missing stdlib, ...)."""


@dataclass(frozen=True)
class Origin:
    """Where one file of the root came from: its recipe and the host file copied."""

    provenance: Provenance
    source: str


def stdlib_dir(python_version: str) -> str:
    return f"lib/python{python_version}"


def stdlib_version(stdlib: Path) -> str:
    """X.Y of a stdlib directory, from its name (`.../lib/pythonX.Y`)."""
    match = STDLIB_DIR.match(stdlib.name)
    if match is None:
        raise BundleError(f"--stdlib {stdlib}: not named pythonX.Y; give --python-version")
    return match["version"]


def package_provenance(package_dir: Path) -> Provenance:
    meta = package_dir / PACKAGE_META
    if meta.is_file():
        return Provenance.read(meta)
    return Provenance(recipe=package_dir.name)


def _walk_files(
    top: Path, excluded_top: frozenset[str] = frozenset(), excluded: frozenset[str] = frozenset()
) -> Iterator[tuple[str, Path]]:
    """(relative posix path, host path) of every file below top, following links.

    Entries named in ``excluded`` are skipped at any depth, those matching a pattern of
    ``excluded_top`` only at the top. Links are resolved (their targets get copied); a
    dangling link, a special file or a directory loop is an error.
    """
    seen: set[tuple[int, int]] = set()

    def walk(folder: Path, prefix: str) -> Iterator[tuple[str, Path]]:
        st = folder.stat()
        if (st.st_dev, st.st_ino) in seen:
            raise BundleError(f"{folder}: directory loop through a symlink")
        seen.add((st.st_dev, st.st_ino))
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name in excluded or (not prefix and any(fnmatch(entry.name, p) for p in excluded_top)):
                continue
            path = Path(entry.path)
            try:
                mode = path.stat().st_mode
            except FileNotFoundError:
                raise BundleError(f"{path}: dangling symlink") from None
            if stat.S_ISDIR(mode):
                yield from walk(path, f"{prefix}{entry.name}/")
            elif stat.S_ISREG(mode):
                yield f"{prefix}{entry.name}", path
            else:
                raise BundleError(f"{path}: not a regular file or directory")
        seen.discard((st.st_dev, st.st_ino))

    yield from walk(top, "")


def _copy_file(src: Path, dest: Path) -> None:
    """Copy content only; mode 0o755 if the source is executable by anyone, else 0o644."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while chunk := fin.read(1 << 20):
            fout.write(chunk)
    executable = src.stat().st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.chmod(dest, EXEC_MODE if executable else FILE_MODE)


def _place(root: Path, rel: str, src: Path, origin: Origin, origins: dict[str, Origin]) -> None:
    """Copy src to root/rel, refusing to overwrite anything another source placed."""
    previous = origins.get(rel)
    if previous is not None:
        raise BundleError(
            f"{rel}: provided by both {previous.provenance.recipe} ({previous.source}) "
            f"and {origin.provenance.recipe} ({origin.source})"
        )
    dest = root / rel
    if dest.exists() or any(p in origins for p in _parents(rel)):
        raise BundleError(f"{rel}: file/directory clash with another source ({origin.source})")
    _copy_file(src, dest)
    origins[rel] = origin


def _parents(rel: str) -> Iterator[str]:
    parts = rel.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def copy_tree(
    src: Path,
    root: Path,
    dest_prefix: str,
    provenance: Provenance,
    origins: dict[str, Origin],
    excluded_top: frozenset[str] = frozenset(),
) -> None:
    """Copy every file below src to root/dest_prefix, recording its origin."""
    for rel, path in _walk_files(src, excluded_top, EXCLUDED_EVERYWHERE):
        _place(root, f"{dest_prefix}/{rel}", path, Origin(provenance, str(path)), origins)


def _check_build_python(exe: Path, python_version: str) -> None:
    try:
        proc = subprocess.run(
            [str(exe), "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, check=True, timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BundleError(f"--build-python {exe}: cannot run it: {exc}") from None
    found = proc.stdout.strip()
    if found != python_version:
        raise BundleError(
            f"--build-python {exe} is Python {found}, the runtime is {python_version}: "
            "bytecode must come from the same version (the host Python will not do)"
        )


def compile_bytecode(root: Path, build_python: Path, python_version: str) -> None:
    """compileall over root/lib with a native CPython of the runtime's version.

    unchecked-hash .pyc files hold no timestamps; -d makes the file names inside them
    the guest's (/lib/pythonX.Y/...).
    """
    _check_build_python(build_python, python_version)
    cmd = [
        str(build_python), "-I", "-m", "compileall", "-q", "-j0",
        "--invalidation-mode", "unchecked-hash", "-d", "/lib", str(root / "lib"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stdout + proc.stderr).strip()
        raise BundleError(f"compileall failed ({proc.returncode}):\n{detail}")


def pyc_source(rel: str) -> str | None:
    """lib/x/__pycache__/m.cpython-313.pyc -> lib/x/m.py (None if rel is not such a .pyc)."""
    match = _PYC.match(rel)
    return f"{match['dir']}{match['stem']}.py" if match else None


def _record_bytecode(root: Path, origins: dict[str, Origin]) -> None:
    """Give every .pyc compileall wrote the origin of the .py it was compiled from."""
    for rel, _path in _walk_files(root / "lib"):
        rel = f"lib/{rel}"
        if rel in origins:
            continue
        source = pyc_source(rel)
        if source is None or source not in origins:
            raise BundleError(f"{rel}: appeared in the root with no known origin")
        origins[rel] = Origin(origins[source].provenance, f"compileall {source}")


def assemble_root(
    out: Path,
    python_wasm: Path,
    stdlib: Path,
    packages: Iterable[Path] = (),
    functions: Path | None = None,
    build_python: Path | None = None,
    meta: dict[str, Provenance] | None = None,
    python_version: str | None = None,
) -> dict[str, Origin]:
    """Build the runtime root in ``out`` (absent or empty); returns each file's origin.

    ``python_version`` (X.Y) defaults to the one the stdlib directory is named after.
    """
    meta = meta or {}
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"--out {out}: not empty (assemble into a fresh directory)")
    if not python_wasm.is_file():
        raise BundleError(f"--python-wasm {python_wasm}: no such file")
    if not (stdlib / "os.py").is_file():
        raise BundleError(f"--stdlib {stdlib}: not a standard library (no os.py)")
    python_version = python_version or stdlib_version(stdlib)
    out.mkdir(parents=True, exist_ok=True)
    python = meta.get("python", Provenance(recipe="python"))
    origins: dict[str, Origin] = {}
    _place(out, "bin/python.wasm", python_wasm, Origin(python, str(python_wasm)), origins)
    lib = stdlib_dir(python_version)
    copy_tree(stdlib, out, lib, python, origins, STDLIB_EXCLUDES)
    (out / lib / "site-packages").mkdir(parents=True, exist_ok=True)
    # getpath looks for lib-dynload to find exec_prefix (else it warns); a file keeps the
    # directory through caches and tarballs that carry files only.
    dynload = out / lib / "lib-dynload"
    dynload.mkdir(parents=True, exist_ok=True)
    if not any(dynload.iterdir()):
        (dynload / ".keep").write_text("")
        origins[f"{lib}/lib-dynload/.keep"] = Origin(python, "generated")
    for package in packages:
        site = package / "site-packages"
        if not site.is_dir():
            raise BundleError(f"--package {package}: no site-packages/ directory in it")
        copy_tree(site, out, f"{lib}/site-packages", package_provenance(package), origins)
    if functions is not None:
        if not functions.is_dir():
            raise BundleError(f"--functions {functions}: not a directory")
        (out / "functions").mkdir(exist_ok=True)
        provenance = meta.get("functions", Provenance(recipe="functions"))
        copy_tree(functions, out, "functions", provenance, origins)
    if build_python is not None:
        compile_bytecode(out, build_python, python_version)
        _record_bytecode(out, origins)
    return origins


def make_manifest(root: Path, origins: dict[str, Origin]) -> RuntimeManifest:
    """One entry per file of root, sorted by path; every file must have an origin."""
    entries = []
    for rel, path in _walk_files(root):
        origin = origins.get(rel)
        if origin is None:
            raise BundleError(f"{rel}: in {root} but no origin was recorded for it")
        prov = origin.provenance
        entries.append(ManifestEntry(path=rel, size=path.stat().st_size, sha256=sha256_file(path),
                                     recipe=prov.recipe, source_sha256=prov.source_sha256, license=prov.license))
    missing = sorted(set(origins) - {e.path for e in entries})
    if missing:
        raise BundleError(f"{missing[0]}: recorded but missing from {root}")
    return RuntimeManifest(files=sorted(entries, key=lambda e: e.path))


def write_manifest(root: Path, origins: dict[str, Origin], dest: Path) -> RuntimeManifest:
    """Write the manifest atomically; returns it."""
    manifest = make_manifest(root, origins)
    manifest.write(dest)
    return manifest


def _tree_entries(root: Path) -> list[tuple[str, Path]]:
    """Every directory and file below root (not root itself), sorted; no links allowed."""
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in dirnames + filenames:
            path = base / name
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                raise BundleError(f"{path}: only regular files and directories can be packed")
            found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def _tar_info(rel: str, path: Path, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(rel)
    st = path.stat()
    if stat.S_ISDIR(st.st_mode):
        info.type, info.mode, info.size = tarfile.DIRTYPE, DIR_MODE, 0
    else:
        executable = st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        info.type, info.mode, info.size = tarfile.REGTYPE, EXEC_MODE if executable else FILE_MODE, st.st_size
    info.mtime = epoch
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tarball(root: Path, dest: Path, epoch: int) -> None:
    """A reproducible .tar.gz of root's contents (entry names relative to root)."""
    # compresslevel 6, not 9: a third of the time for a 5 % larger file.
    with (
        atomic_output(dest) as handle,
        gzip.GzipFile(fileobj=handle, mode="wb", mtime=0, filename="", compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel, path in _tree_entries(root):
            info = _tar_info(rel, path, epoch)
            if info.isdir():
                tar.addfile(info)
            else:
                with open(path, "rb") as data:
                    tar.addfile(info, data)


def source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "0") or "0"
    try:
        return int(value)
    except ValueError:
        raise BundleError(f"SOURCE_DATE_EPOCH={value!r} is not an integer") from None


def parse_meta(items: list[str]) -> dict[str, Provenance]:
    meta: dict[str, Provenance] = {}
    for item in items:
        role, sep, file = item.partition("=")
        if not sep or role not in META_ROLES:
            raise BundleError(f"--meta {item!r}: expected ROLE=FILE with ROLE one of {', '.join(META_ROLES)}")
        meta[role] = Provenance.read(Path(file))
    return meta


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.wasmbuild.bundle", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    asm = sub.add_parser(
        "assemble", help="build the runtime root, its manifest and tarball",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "example:\n  \"$PYTHON\" -m pipeline.wasmbuild.bundle assemble --out \"$OUT/root\" \\\n"
            "    --python-wasm \"$LINKED/python.wasm\" --cpython \"$CPY\" \\\n"
            "    --package \"$PKG/markupsafe\" --functions func \\\n"
            "    --build-python \"$BUILD_PY/bin/python3.X\" \\\n"
            "    --manifest \"$OUT/manifest.json\" --tarball \"$OUT/runtime_root.tar.gz\"\n"
            "The tarball's mtimes are $SOURCE_DATE_EPOCH (0 when unset)."
        ),
    )
    asm.add_argument("--out", type=Path, required=True, metavar="DIR", help="the root to create (absent or empty)")
    asm.add_argument("--python-wasm", type=Path, required=True, metavar="FILE")
    asm.add_argument("--cpython", type=Path, metavar="DIR",
                     help="build_cpython's output: its build-info.json gives --stdlib and --python-version, "
                          "its package.json --meta python")
    asm.add_argument("--stdlib", type=Path, metavar="DIR", help="e.g. PREFIX/lib/pythonX.Y")
    asm.add_argument("--package", type=Path, action="append", default=[], metavar="DIR",
                     help="a package output holding site-packages/ (and package.json); repeatable")
    asm.add_argument("--functions", type=Path, metavar="DIR", help="copied to functions/")
    asm.add_argument("--build-python", type=Path, metavar="EXE",
                     help="native CPython of the runtime's X.Y for compileall (never the host Python)")
    asm.add_argument("--meta", action="append", default=[], metavar="ROLE=FILE",
                     help="provenance JSON for 'python' (python.wasm + stdlib) or 'functions'")
    asm.add_argument("--python-version", metavar="X.Y", help="default: from --cpython, else --stdlib's name")
    asm.add_argument("--manifest", type=Path, metavar="FILE", help="write the JSON manifest here")
    asm.add_argument("--tarball", type=Path, metavar="FILE", help="write a reproducible .tar.gz here")
    tar = sub.add_parser("tarball", help="pack an existing directory reproducibly")
    tar.add_argument("root", type=Path, metavar="DIR")
    tar.add_argument("dest", type=Path, metavar="FILE.tar.gz")
    return parser


def cmd_assemble(args: argparse.Namespace) -> int:
    epoch = source_date_epoch()
    meta = parse_meta(args.meta)
    stdlib, python_version = args.stdlib, args.python_version
    if args.cpython is not None:
        info = BuildInfo.read(args.cpython / "build-info.json")
        stdlib = stdlib or args.cpython / info.stdlib
        python_version = python_version or info.python_version
        meta.setdefault("python", Provenance.read(args.cpython / PACKAGE_META))
    if stdlib is None:
        raise BundleError("give --cpython or --stdlib")
    origins = assemble_root(
        args.out, args.python_wasm, stdlib, args.package, args.functions,
        args.build_python, meta, python_version,
    )
    if args.manifest is not None:
        write_manifest(args.out, origins, args.manifest)
    if args.tarball is not None:
        write_tarball(args.out, args.tarball, epoch)
    print(f"assembled {args.out}: {len(origins)} files")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "assemble":
            return cmd_assemble(args)
        write_tarball(args.root, args.dest, source_date_epoch())
        return 0
    except PipelineError as exc:
        return report_error(exc)


if __name__ == "__main__":
    raise SystemExit(main())
