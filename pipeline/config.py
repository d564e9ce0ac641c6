"""The one project config file (pipeline.yaml) and the toolchain description derived from it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError, field_validator

from .errors import PipelineError, RecipeError
from .paths import Paths
from .snapshot import HASH_SEED_MAX, MODULE_NAME_RE
from .spec import Spec

# libyaml's parser is ~10x faster; recipe loading is on every no-op's path.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ProjectConfig(Spec):
    target: str = "wasm32-wasi"
    malloc: Literal["dlmalloc", "mimalloc"] = "dlmalloc"
    jobs: int | None = None  # make -j inside one task; default: the machine's core count
    workers: int | None = None  # tasks run at once; default: the core count
    cache_dir: str | None = None  # default: $XDG_CACHE_HOME/pywasm-pipeline
    remote_cache: str | None = None  # shared cache URL (http(s)://, file://, s3://); $PIPELINE_REMOTE_CACHE wins
    remote_readonly: bool = False  # fetch only; $PIPELINE_REMOTE_READONLY=1 forces it
    toolchain_recipe: str | None = "toolchain"  # whose compilers are fingerprinted
    sysroot_recipe: str | None = "malloc"  # its output holds the final sysroot
    cpython_recipe: str = "build_cpython"  # every python-package recipe builds against it
    build_python_recipe: str = "build_python"  # ...with this native CPython of the same version
    llvm_version: str = "19"
    versions: dict[str, str] = {}  # pinned versions, for templates
    toolchain_packages: list[str] = []  # apt pins, `name=version`
    system_packages: list[str] = []  # apt names, any version (build tools)
    codegen_target: str | None = None  # None: this machine
    runtime_packages: list[str] = []
    # Modules imported into the pre-initialized interpreter snapshot (besides pyfaasm), in order.
    snapshot_preload: list[str] = []
    # The snapshot's frozen hash secret (PYTHONHASHSEED, 1..HASH_SEED_MAX). None: derived from
    # python.wasm's sha256, so reproducible per build but not one constant for every build.
    snapshot_hash_seed: int | None = None

    @field_validator("snapshot_preload")
    @classmethod
    def _module_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not MODULE_NAME_RE.match(name):
                raise ValueError(f"{name!r} is not a module name (dotted identifiers, e.g. numpy or xml.dom)")
        if len(set(names)) != len(names):
            raise ValueError("lists a module twice")
        return names

    @field_validator("snapshot_hash_seed")
    @classmethod
    def _hash_seed(cls, seed: int | None) -> int | None:
        if seed is not None and not 1 <= seed <= HASH_SEED_MAX:
            raise ValueError(f"must be 1..{HASH_SEED_MAX} (0 would turn hash randomization off)")
        return seed

    def job_count(self) -> int:
        return count_setting("PIPELINE_JOBS", self.jobs)

    def worker_count(self) -> int:
        return count_setting("PIPELINE_WORKERS", self.workers)


def count_setting(env_var: str, configured: int | None) -> int:
    """The environment wins over pipeline.yaml; the default is the machine's core count."""
    return int(os.environ.get(env_var) or configured or os.cpu_count() or 1)


def read_yaml(file: Path) -> Any:
    """Parse a YAML file, turning syntax errors into a one-line RecipeError."""
    try:
        text = file.read_text()
    except OSError as exc:
        raise RecipeError(file, "", f"cannot read: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(file, where, f"invalid YAML: {problem}") from None


def first_error(file: Path | str, exc: ValidationError) -> RecipeError:
    """Condense pydantic's report to one line naming the field."""
    err = exc.errors()[0]
    field = ".".join(str(part) for part in err["loc"])
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "is required"
    else:
        message = f"{message} (got {err['input']!r})" if "input" in err else message
    return RecipeError(file, field, message.removeprefix("Value error, "))


REMOTE_ENV = "PIPELINE_REMOTE_CACHE"


def remote_url(configured: str | None) -> str | None:
    """The remote cache: $PIPELINE_REMOTE_CACHE wins over pipeline.yaml's remote-cache."""
    return os.environ.get(REMOTE_ENV) or configured


def load_config(root: Path) -> ProjectConfig:
    file = root / "pipeline.yaml"
    data = read_yaml(file) if file.exists() else {}
    if not isinstance(data, dict):
        raise RecipeError(file, "", "must be a mapping")
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise first_error(file.name, exc) from None  # named as in the checkout, no absolute path


# Debian's libc++ for wasm32 (libc++-19-dev-wasm32, libc++abi-19-dev-wasm32): C++ extensions
# compile against these headers and link these archives.
LIBCXX_INCLUDE = "/usr/lib/llvm-19/include/wasm32-wasi/c++/v1"
LIBCXX_LINK = ("-L/usr/lib/llvm-19/lib/wasm32-wasi", "-lc++", "-lc++abi")


def describe_toolchain(config: ProjectConfig, sysroot: Path) -> dict[str, str]:
    """What recipes template from: compilers and tools for the target."""
    v = config.llvm_version
    target = config.target
    base = f"--target={target} --sysroot={sysroot}"
    return {
        "target": target,
        "cc": f"clang-{v} {base}",
        "cxx": f"clang++-{v} {base}",
        "cpp": f"clang-cpp-{v} {base}",
        "ar": f"llvm-ar-{v}",
        "ranlib": f"llvm-ranlib-{v}",
        "nm": f"llvm-nm-{v}",
        "ld": f"wasm-ld-{v}",
        "strip": f"llvm-strip-{v}",
        "clang": f"clang-{v}",
        "sysroot": str(sysroot),
        "fingerprint_tools": f"clang-{v} wasm-ld-{v} llvm-ar-{v}",
    }


def project_paths(root: Path, config: ProjectConfig) -> Paths:
    paths = Paths.for_project(root, config.cache_dir)
    for what, place in (("checkout", paths.root), ("cache directory", paths.cache)):
        if any(char.isspace() for char in str(place)):
            # configure scripts and Makefiles (wasi-libc, CPython) split paths at spaces
            raise PipelineError(f"{what} path {str(place)!r} contains whitespace, which autotools builds cannot handle")
    return paths
