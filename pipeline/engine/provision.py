"""System provisioning through apt: deb-src entries and pinned packages.

deb-src entries are derived from the machine's own apt sources, so no archive
host name is written anywhere in this project.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from pathlib import Path

from ..errors import PipelineError, report_error

APT_DIR = Path("/etc/apt/sources.list.d")
SRC_FILE = APT_DIR / "pipeline-src.sources"
SOURCE_SUITES = ("bookworm", "trixie")  # trixie carries the pinned CPython 3.13.5


def debian_stanzas() -> list[dict[str, str]]:
    """The `Types: deb` stanzas of the machine's deb822 and one-line apt sources."""
    stanzas: list[dict[str, str]] = []
    for file in sorted(APT_DIR.glob("*.sources")):
        if file == SRC_FILE:
            continue
        for block in file.read_text().split("\n\n"):
            fields = dict(
                (key.strip(), value.strip())
                for key, value in (line.split(":", 1) for line in block.splitlines() if re.match(r"^[A-Za-z-]+:", line))
            )
            if "deb" in fields.get("Types", "").split() and "debian" in fields.get("URIs", ""):
                stanzas.append(fields)
    for file in [Path("/etc/apt/sources.list"), *sorted(APT_DIR.glob("*.list"))]:
        if not file.exists():
            continue
        for line in file.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "debian" in parts[1] and not parts[1].startswith("["):
                stanzas.append({"Types": "deb", "URIs": parts[1], "Components": "main"})
    return [s for s in stanzas if "security" not in s["URIs"]]


def deb_src_text() -> str:
    stanzas = debian_stanzas()
    if not stanzas:
        raise PipelineError("no Debian 'deb' entry in the apt sources to derive deb-src entries from")
    base = stanzas[0]
    lines = ["Types: deb-src", f"URIs: {base['URIs']}", f"Suites: {' '.join(SOURCE_SUITES)}", "Components: main"]
    if "Signed-By" in base:
        lines.append(f"Signed-By: {base['Signed-By']}")
    return "\n".join(lines) + "\n"


def need_root(what: str, command: str) -> PipelineError:
    return PipelineError(f"{what} needs root; run: sudo {command}")


def ensure_deb_src() -> None:
    text = deb_src_text()
    if SRC_FILE.exists() and SRC_FILE.read_text() == text:
        return
    if os.geteuid() != 0:
        raise need_root("adding deb-src entries", "python -m pipeline provision --deb-src")
    SRC_FILE.write_text(text)
    run_apt(["apt-get", "update", "-qq"])


def missing_packages(pins: list[str]) -> list[str]:
    """`name=version` pins whose exact version is not installed."""
    missing = []
    for pin in pins:
        name, _, version = pin.partition("=")
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version} ${db:Status-Status}", name],
            capture_output=True, text=True, check=False,
        )
        got_version, _, status = proc.stdout.partition(" ")
        if proc.returncode != 0 or status != "installed" or (version and got_version != version):
            missing.append(pin)
    return missing


def ensure_apt_packages(pins: list[str]) -> list[str]:
    """Install the pinned packages that are missing; return what was installed."""
    missing = missing_packages(pins)
    if not missing:
        return []
    command = "apt-get install -y " + " ".join(missing)
    if os.geteuid() != 0:
        raise need_root(f"installing {', '.join(missing)}", f"apt-get update && {command}")
    run_apt(["apt-get", "update", "-qq"])
    run_apt(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing])
    return missing


def run_apt(argv: list[str]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise PipelineError(f"{' '.join(argv[:3])} failed: {' / '.join(tail)}")


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.engine.provision NAME=VERSION...`: install the pins that are missing.

    A recipe's step calls this (not `python -m pipeline provision`) so that its key holds
    this small module's code, not the whole CLI's.
    """
    parser = argparse.ArgumentParser(prog="python -m pipeline.engine.provision", description=main.__doc__)
    parser.add_argument("pins", nargs="+", metavar="NAME=VERSION", help="apt packages, pinned")
    args = parser.parse_args(argv)
    try:
        installed = ensure_apt_packages(args.pins)
    except PipelineError as exc:
        return report_error(exc)
    print(f"installed: {' '.join(installed)}" if installed else "pinned packages already installed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
