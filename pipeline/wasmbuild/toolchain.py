"""The toolchain task's outputs: what later recipes and build systems use of the LLVM toolchain.

    python -m pipeline.wasmbuild.toolchain --target wasm32-wasi --llvm-version 19 \\
        --sysroot build/malloc/sysroot --templates toolchain --out "$OUT" --prefix "$PREFIX"

writes into --out:
    toolchain.json     the `Toolchain` (pipeline/engine/toolchain.py), derived the same way the
                       engine derives `tc` for templates
    versions.txt       the compilers' own version lines
    bin/<target>-cc, bin/<target>-c++   one-executable wrappers (meson and cmake want one)
    <name>             every <name>.in of --templates with this target's tools filled in
    config.site        --templates/config.site-<target>

The package builder fills the same meson cross file with its own compiler wrappers
(`fill_template`, one code path).
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from ..engine.toolchain import Toolchain
from ..errors import PipelineError, report_error
from ..files import write_atomic

TEMPLATE_SUFFIX = ".in"
PLACEHOLDER = re.compile(r"@[A-Z][A-Z_]*@")
EXEC_MODE = 0o755


def placeholders(tc: Toolchain, bin_dir: Path) -> dict[str, str]:
    """What the `@NAME@`s of a cross-file template stand for; @BIN@ holds `<target>-cc` and `-c++`."""
    return {"@TARGET@": tc.target, "@SYSROOT@": tc.sysroot, "@BIN@": str(bin_dir), "@AR@": tc.ar,
            "@NM@": tc.nm, "@RANLIB@": tc.ranlib, "@STRIP@": tc.strip}


def fill_template(template: Path, tc: Toolchain, bin_dir: Path, dest: Path) -> Path:
    """A cross file from its template; a placeholder left unfilled is an error, not a silent bug."""
    text = template.read_text()
    for placeholder, value in placeholders(tc, bin_dir).items():
        text = text.replace(placeholder, value)
    leftover = sorted(set(PLACEHOLDER.findall(text)))
    if leftover:
        raise PipelineError(f"{template}: unknown placeholder(s) {', '.join(leftover)}")
    write_atomic(dest, text)
    return dest


def write_exec_wrapper(path: Path, command: list[str], env: dict[str, str] | None = None) -> Path:
    """A /bin/sh script that runs `command` with its own arguments appended."""
    assignments = "".join(f"{name}={shlex.quote(value)} " for name, value in (env or {}).items())
    write_atomic(path, f"#!/bin/sh\n{assignments}exec {shlex.join(command)} \"$@\"\n", mode=EXEC_MODE)
    return path


def compiler_wrappers(tc: Toolchain, bin_dir: Path) -> dict[str, Path]:
    """`<target>-cc` and `<target>-c++`: the target's compilers as single executables."""
    return {tool: write_exec_wrapper(bin_dir / f"{tc.target}-{tool}", shlex.split(command))
            for tool, command in (("cc", tc.cc), ("c++", tc.cxx))}


def tool_versions(tc: Toolchain) -> str:
    """`--version` of each fingerprinted tool, as they print it."""
    found = []
    for tool in tc.fingerprint_tools.split():
        try:
            proc = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise PipelineError(f"{tool} --version failed: {exc} (is the toolchain installed?)") from None
        found.append(proc.stdout)
    return "".join(found)


def install(tc: Toolchain, templates: Path, out: Path, prefix: Path) -> list[Path]:
    """Every output of the toolchain task into `out`; paths inside them name `prefix`, the final place."""
    written = [tc.write(out / "toolchain.json"), write_atomic_text(out / "versions.txt", tool_versions(tc))]
    written += compiler_wrappers(tc, out / "bin").values()
    for template in sorted(templates.glob(f"*{TEMPLATE_SUFFIX}")):
        written.append(fill_template(template, tc, prefix / "bin", out / template.name.removesuffix(TEMPLATE_SUFFIX)))
    site = templates / f"config.site-{tc.target}"
    if not site.is_file():
        raise PipelineError(f"{site}: no config.site for target {tc.target}")
    shutil.copyfile(site, out / "config.site")
    written.append(out / "config.site")
    return written


def write_atomic_text(path: Path, text: str) -> Path:
    write_atomic(path, text)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.wasmbuild.toolchain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="the target triple, e.g. wasm32-wasi")
    parser.add_argument("--llvm-version", required=True, help="the major version Debian's tool names carry")
    parser.add_argument("--sysroot", required=True, help="the target's sysroot (may not exist yet)")
    parser.add_argument("--templates", type=Path, required=True, help="the folder of *.in cross-file templates")
    parser.add_argument("--out", type=Path, required=True, help="where to write (the task's staging dir)")
    parser.add_argument("--prefix", type=Path, required=True, help="where --out will finally be")
    args = parser.parse_args(argv)
    tc = Toolchain.derive(args.target, args.llvm_version, args.sysroot)
    try:
        written = install(tc, args.templates, args.out, args.prefix)
    except PipelineError as exc:
        return report_error(exc)
    print("\n".join(str(path.relative_to(args.out)) for path in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
