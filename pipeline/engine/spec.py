"""The recipe spec: nested typed models, kebab-case in YAML.

The layout is a superset of Pyodide's meta.yaml (package / source / requirements /
build / test / about / extra), plus `depends`, `inputs` and `outputs` for the
non-package stages. Cross-field rules live in `check_recipe` and raise RecipeError.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import RecipeError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
TASK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*(:[A-Za-z0-9][A-Za-z0-9_.+-]*)?$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

Builder = Literal["shell", "autotools", "python-package", "library"]
SOURCE_KINDS = ("url", "pypi", "debian", "path")


def to_kebab(name: str) -> str:
    return name.replace("_", "-")


def text_not_number(value: Any, what: str = "version", key: str = "version") -> Any:
    """A version YAML read as a number is refused: its text is already lost.

    `version: 1.10` reads as the float 1.1 and `version: 010` as the int 8, so
    no conversion can give back what was written; only quoting can.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"YAML read this {what} as the number {value!r}, which may not be what is written: "
                         f'quote it ({key}: "...")')
    return value


class Spec(BaseModel):
    """Base for every recipe/config model: unknown keys are errors."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_kebab, populate_by_name=True, frozen=True
    )


class PackageMeta(Spec):
    name: str
    version: str
    top_level: list[str] = []
    tag: list[str] = []
    pinned: bool = False
    # Pyodide's switch for a recipe that does not build: left out of the graph, listed as skipped.
    disabled: bool = Field(default=False, alias="_disabled")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(f"{value!r} is not a valid name (letters, digits, _ . + -)")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        return text_not_number(value)


class Source(Spec):
    url: str | None = None
    pypi: str | None = None
    debian: str | None = None
    path: str | None = None
    version: str | None = None  # the PyPI or Debian version to fetch
    sha256: str | None = None
    extract_dir: str | None = None
    # Paths below the archive's top folder to unpack (folders whole), instead of everything: a
    # large tree (the LLVM source, 2 GB) of which a build needs a few folders.
    members: list[str] = []
    patches: list[str] = []
    extras: list[tuple[str, str]] = []

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        return text_not_number(value)

    @field_validator("members")
    @classmethod
    def _members(cls, members: list[str]) -> list[str]:
        for member in members:
            pure = PurePosixPath(member)
            if not member or pure.is_absolute() or ".." in pure.parts:
                raise ValueError(f"{member!r} is not a path below the archive's top folder")
        return members

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        if value is not None and not SHA256_RE.match(value):
            raise ValueError(f"{value!r} is not a sha256 (64 lowercase hex digits)")
        return value

    @property
    def kind(self) -> str:
        return next(kind for kind in SOURCE_KINDS if getattr(self, kind) is not None)


class Requirements(Spec):
    run: list[str] = []
    host: list[str] = []
    executable: list[str] = []
    constraint: list[str] = []


class Build(Spec):
    builder: Builder | None = None
    type: Literal["package", "static_library", "shared_library", "cpython_module"] = "package"
    env: dict[str, str] = {}
    script: str = ""
    configure_args: list[str] = []
    post: str = ""
    cross_script: str = ""
    cflags: str = ""
    cxxflags: str = ""
    ldflags: str = ""
    backend_flags: str = ""
    # C++ exceptions and setjmp/longjmp in the compiled code (the project layer's flags);
    # false compiles C++ with -fno-exceptions and C without the setjmp lowering.
    exceptions: bool = True
    exports: str | list[str] = "pyinit"
    unvendor_tests: bool = True
    cross_build_env: bool = False
    cross_build_files: list[str] = []
    vendor_sharedlib: bool = False  # Pyodide: copy shared libraries into the wheel (none on WASI)
    # Pyodide: test files kept despite unvendor-tests; here tests are moved aside, not deleted
    retain_test_patterns: list[str] = Field(default=[], alias="_retain-test-patterns")

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name, item in value.items():
                # an int's text survives (JOBS: 4); a float's may not (1.10 -> 1.1)
                if isinstance(item, float):
                    text_not_number(item, f"value of {name}", name)
            return {k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in value.items()}
        return value


class Test(Spec):
    commands: str = ""
    imports: list[str] = []
    # Ours: extension modules that must come out as built-ins. A package whose
    # C build may silently fall back to pure Python lists them, so it cannot.
    builtins: list[str] = []


class About(Spec):
    home: str | None = None
    pypi: str | None = Field(default=None, alias="PyPI")
    summary: str | None = None
    license: str | None = None


class Recipe(Spec):
    package: PackageMeta
    source: Source | None = None
    depends: list[str] = []
    inputs: list[str] = []
    requirements: Requirements = Requirements()
    build: Build = Build()
    outputs: list[str] = []
    # Output files (globs) that may differ between two builds of the same inputs, e.g. test
    # reports with timings: left out of `pipeline repro` and of the relocatability check.
    unreproducible: list[str] = []
    test: Test = Test()
    about: About = About()
    extra: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self.package.name

    @property
    def version(self) -> str:
        return self.package.version


def canonical_name(name: str) -> str:
    """PyPI's name normalisation (PEP 503): `MarkupSafe`, `markup_safe` -> `markupsafe`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pick_builder(recipe: Recipe, is_package: bool) -> Builder:
    """Pyodide recipes name a build type, not a builder: derive it. A `shared_library` becomes a
    static one on WASI (no dlopen), so both library types build alike."""
    if recipe.build.builder:
        return recipe.build.builder
    if is_package and recipe.build.type in ("static_library", "shared_library"):
        return "library"
    return "python-package" if is_package and recipe.build.type == "package" else "shell"


def check_recipe(recipe: Recipe, file: str) -> None:
    """Cross-field rules pydantic's per-field checks cannot express."""
    source = recipe.source
    if source is not None:
        given = [kind for kind in SOURCE_KINDS if getattr(source, kind) is not None]
        if len(given) != 1:
            got = ", ".join(given) or "none"
            raise RecipeError(file, "source", f"needs exactly one of url, pypi, debian, path (got {got})")
        if source.kind != "path" and source.sha256 is None:
            raise RecipeError(file, "source.sha256", f"is required for a {source.kind} source")
        if source.kind in ("pypi", "debian") and not source.version:
            raise RecipeError(file, "source.version", f"is required for a {source.kind} source")
    elif recipe.build.builder == "python-package":
        raise RecipeError(file, "source", "a python-package recipe needs a source")
    for field, items in (("depends", recipe.depends), ("requirements.host", recipe.requirements.host)):
        for index, dep in enumerate(items):
            if not TASK_RE.match(dep):
                raise RecipeError(file, f"{field}[{index}]", f"{dep!r} is not a task name")
    for index, out in enumerate(recipe.outputs):
        pure = PurePosixPath(out)
        if pure.is_absolute() or ".." in pure.parts:
            raise RecipeError(file, f"outputs[{index}]", f"{out!r} must be a relative path inside the output")
