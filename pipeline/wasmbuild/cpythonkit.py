"""build_cpython's contract with what builds on it: the relink kit, the build info, provenance.

    python -m pipeline.wasmbuild.cpythonkit --build-dir "$WORK/build" --out "$OUT" \\
        --install-dir runtime --recipe build_cpython --version X.Y.Z \\
        --source-sha256 SHA --license PSF-2.0

Run after `make install DESTDIR="$OUT/<install-dir>"` in a configured and built CPython
tree. Everything comes from that tree's own Makefile (one `make` run prints the
variables), so no version or library name is written down twice:

    relink/               python.o, libpythonX.Y.a, config.c and every archive the link line
                          names, copied: the kit never points into another task's build dir
    relink/link.json      `RelinkKit`: the link line as data (pipeline.wasmbuild.link reads it)
    build-info.json       `BuildInfo`: version, interpreter name, headers, stdlib, guest home
    package.json          `Provenance` of python.wasm and the stdlib, for the runtime manifest
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import PipelineError, report_error
from .contracts import BuildInfo, Provenance, RelinkKit

# What the kit needs from the Makefile. LIBS/MODLIBS/SYSLIBS: the libraries python.wasm links,
# in order; PY_CORE_LDFLAGS + LINKFORSHARED: the link flags; LIBRARY: the static libpython.
MAKE_VARIABLES = ("VERSION", "LIBRARY", "LIBS", "MODLIBS", "SYSLIBS", "PY_CORE_LDFLAGS", "LINKFORSHARED")
MARKER = "@@cpythonkit@@"
PRINT_TARGET = "cpythonkit-print-variables"
MAIN_OBJECT = "Programs/python.o"
CONFIG_C = "Modules/config.c"
KIT = "relink"
KIT_LIB = "lib"  # archives found through -L<dir> land here, named by one -Llib


class KitError(PipelineError):
    """The build tree lacks something the kit needs."""


def makefile_variables(build_dir: Path, names: tuple[str, ...] = MAKE_VARIABLES) -> dict[str, str]:
    """The expanded values of Makefile variables, read by make itself in one run."""
    rules = "".join(f"\t$(info {MARKER}{name}=$({name}))\n" for name in names)
    with tempfile.TemporaryDirectory(prefix="cpythonkit-") as scratch:
        printer = Path(scratch) / "print.mk"
        printer.write_text(f".PHONY: {PRINT_TARGET}\n{PRINT_TARGET}:\n{rules}\t@:\n")
        proc = subprocess.run(["make", "-s", "-f", "Makefile", "-f", str(printer), PRINT_TARGET],
                              cwd=build_dir, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise KitError(f"{build_dir}: make could not read the Makefile ({proc.returncode}): {proc.stderr.strip()}")
    found = {}
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            name, _, value = line.removeprefix(MARKER).partition("=")
            found[name] = value.strip()
    missing = [name for name in names if name not in found]
    if missing:
        raise KitError(f"{build_dir}/Makefile: make printed no value for {', '.join(missing)}")
    return found


@dataclass(frozen=True)
class CopiedLibs:
    libs: list[str]  # the link line's library words, kit-relative
    copies: list[tuple[Path, str]]  # (file in the build tree or elsewhere, kit-relative destination)


def plan_libs(words: list[str], build_dir: Path) -> CopiedLibs:
    """Rewrite the link line's library words so they name files inside the kit.

    `path/libx.a` (relative to the build dir) keeps its relative path; an absolute
    archive and every archive of a `-L<dir>` go into lib/, found by one `-Llib`;
    `-lname` and other flags stay as they are.
    """
    libs: list[str] = []
    copies: list[tuple[Path, str]] = []
    for word in words:
        if word.endswith(".a"):
            source = Path(word) if Path(word).is_absolute() else build_dir / word
            rel = f"{KIT_LIB}/{source.name}" if Path(word).is_absolute() else word
            copies.append((source, rel))
            libs.append(rel)
        elif word.startswith("-L"):
            folder = Path(word[2:]) if Path(word[2:]).is_absolute() else build_dir / word[2:]
            copies += [(archive, f"{KIT_LIB}/{archive.name}") for archive in sorted(folder.glob("*.a"))]
            if f"-L{KIT_LIB}" not in libs:
                libs.append(f"-L{KIT_LIB}")
        else:
            libs.append(word)
    return CopiedLibs(libs, copies)


def copy_into(kit: Path, copies: list[tuple[Path, str]]) -> None:
    for source, rel in copies:
        if not source.is_file():
            raise KitError(f"{source}: named by the link line but not built")
        dest = kit / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)


def build_info(variables: dict[str, str], out: Path, install_dir: str) -> BuildInfo:
    """Paths relative to the output, so it can be restored anywhere; checked to exist."""
    version = variables["VERSION"]
    info = BuildInfo(
        python_version=version,
        interpreter=f"python{version}",
        include=f"{install_dir}/include/python{version}",
        home=install_dir,
        stdlib=f"{install_dir}/lib/python{version}",
    )
    for rel, witness in ((info.include, "Python.h"), (info.stdlib, "os.py")):
        if not (out / rel / witness).is_file():
            raise KitError(f"{out / rel}: no {witness} (run after `make install DESTDIR=$OUT/{install_dir}`)")
    return info


def make_kit(build_dir: Path, out: Path, install_dir: str, provenance: Provenance) -> RelinkKit:
    variables = makefile_variables(build_dir)
    info = build_info(variables, out, install_dir)
    kit = out / KIT
    planned = plan_libs(shlex.split(" ".join(variables[name] for name in ("LIBS", "MODLIBS", "SYSLIBS"))), build_dir)
    archive = variables["LIBRARY"]
    copy_into(kit, [(build_dir / CONFIG_C, "config.c"), (build_dir / MAIN_OBJECT, MAIN_OBJECT),
                    (build_dir / archive, archive), *planned.copies])
    relink = RelinkKit(
        ldflags=shlex.split(f"{variables['PY_CORE_LDFLAGS']} {variables['LINKFORSHARED']}"),
        libs=planned.libs,
        objects=[MAIN_OBJECT],
        archive=archive,
        config_c="config.c",
        includes=[info.include, f"{info.include}/internal"],
    )
    relink.write(kit / "link.json")
    info.write(out / "build-info.json")
    provenance.write(out / "package.json")
    return relink


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.wasmbuild.cpythonkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", type=Path, required=True, help="the configured, built CPython tree")
    parser.add_argument("--out", type=Path, required=True, help="build_cpython's output ($OUT)")
    parser.add_argument("--install-dir", default="runtime", help="where `make install` put it, relative to --out")
    parser.add_argument("--recipe", required=True, help="provenance: the recipe's name")
    parser.add_argument("--version", required=True, help="provenance: the recipe's version")
    parser.add_argument("--source-sha256", help="provenance: the source's sha256")
    parser.add_argument("--license", help="provenance: an SPDX license expression")
    args = parser.parse_args(argv)
    provenance = Provenance(recipe=args.recipe, version=args.version, source_sha256=args.source_sha256,
                            license=args.license)
    try:
        relink = make_kit(args.build_dir, args.out, args.install_dir, provenance)
    except PipelineError as exc:
        return report_error(exc)
    print(f"relink kit: {relink.archive}, {len(relink.libs)} library words, {len(relink.ldflags)} link flags")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
