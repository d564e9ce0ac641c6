"""How much of a Pyodide recipe tree builds unchanged for WASI: a seeded random sample, per kind.

    python bench/pyodide_sweep.py PACKAGES_DIR [--wheels 20] [--sdists 20] [--seed 1]

PACKAGES_DIR is Pyodide's recipe tree (`pyodide-recipes/packages`, any copy). Recipes are sorted
into kinds by their meta.yaml: a pure wheel (`url:` ends in .whl), a plain sdist (C, C++ or
Cython extensions, no build script), an sdist with a build script, a library. A sample of each
of the first two kinds is drawn with the seed and built with `python -m pipeline build-recipes`
(their dependencies come along; recipes of ours win by name). A wheel counts if it builds and
its `test.imports` import in python.wasm; an sdist also needs its C extensions built in (the
builder fails a package that fell back to pure Python). Prints each recipe's outcome, the
figures per kind, and writes the report JSON next to build/recipes-report.json.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.engine.spec import canonical_name  # noqa: E402  (after the path)


def kind_of(meta: dict) -> str:
    build = meta.get("build") or {}
    if meta.get("package", {}).get("_disabled"):
        return "disabled"
    if build.get("type") in ("static_library", "shared_library"):
        return "library"
    if build.get("type") == "cpython_module":
        return "cpython_module"
    url = (meta.get("source") or {}).get("url") or ""
    if url.endswith(".whl"):
        return "wheel"
    return "sdist-script" if build.get("script") else "sdist"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tree", type=Path)
    parser.add_argument("--wheels", type=int, default=20)
    parser.add_argument("--sdists", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    kinds: dict[str, list[str]] = {}
    for meta_file in sorted(args.tree.glob("*/meta.yaml")):
        meta = yaml.safe_load(meta_file.read_text()) or {}
        kinds.setdefault(kind_of(meta), []).append(meta_file.parent.name)
    print("tree:", ", ".join(f"{len(names)} {kind}" for kind, names in sorted(kinds.items())))
    rng = random.Random(args.seed)
    sample = {"wheel": sorted(rng.sample(kinds.get("wheel", []), min(args.wheels, len(kinds.get("wheel", []))))),
              "sdist": sorted(rng.sample(kinds.get("sdist", []), min(args.sdists, len(kinds.get("sdist", [])))))}
    report_file = REPO / "build" / "pyodide-sweep.json"
    names = sample["wheel"] + sample["sdist"]
    print(f"sample (seed {args.seed}): {len(sample['wheel'])} wheels, {len(sample['sdist'])} sdists")
    subprocess.run([sys.executable, "-m", "pipeline", "build-recipes", str(args.tree), *names, "--continue",
                    "--json", str(report_file)], cwd=REPO, check=False)
    outcomes = {item["name"]: item for item in json.loads(report_file.read_text())["recipes"]}
    print(f"\n{'kind':<8} {'sampled':>7} {'built':>6} {'failed':>6} {'skipped':>7} {'built %':>8}")
    for kind, chosen in sample.items():
        got = [outcomes[canonical_name(name)]["outcome"] for name in chosen]
        built = got.count("built")
        print(f"{kind:<8} {len(chosen):>7} {built:>6} {got.count('failed'):>6} {got.count('skipped'):>7} "
              f"{100 * built / max(len(chosen), 1):>7.0f}%")
    print(f"report: {report_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
