"""The one project config file (pipeline.yaml): the engine's keys, and the project layer's passed on to it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlparse

import yaml
from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator

from ..errors import PipelineError, RecipeError
from ..paths import Paths
from .layer import ProjectLayer
from .spec import Spec, text_not_number

SpecModel = TypeVar("SpecModel", bound=Spec)

# libyaml's parser is ~10x faster; recipe loading is on every no-op's path.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f"duplicate key {key!r} (first at line {first_line})")
        self.key, self.line, self.first_line = key, line, first_line


class UniqueKeyLoader(SAFE_LOADER):  # type: ignore[misc, valid-type]
    """The safe loader, but a key given twice in one mapping is an error.

    Plain YAML lets the later value win silently: two `version:` lines, or two
    `package:` sections, would build something other than what the reader sees.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` may be overridden on purpose; that is what merging is for
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: the base constructor reports it
                continue
            if first != line:
                raise DuplicateKey(key, line, first)
        return super().construct_mapping(node, deep=deep)


# A count of jobs or workers: 0 or less would mean "nothing runs" (or make's "no limit").
Count = Annotated[int, Field(ge=1, le=1024, strict=True)]
REMOTE_SCHEMES = ("http", "https", "file", "s3")


MIRROR_SCHEMES = ("http", "https", "file")
# In a package pin, `{name}` is `versions.name` and `{name.major}` its major (version_major).
VERSION_PLACEHOLDER = re.compile(r"\{([\w-]+)(\.major)?\}")


def version_major(version: str) -> str:
    """The first component of a version's upstream part: `1:22.1.8-1~deb12u1` -> `22` (Debian's
    epoch and revision dropped), `3.13.5` -> `3`."""
    upstream = version.split(":", 1)[1] if re.match(r"^[0-9]+:", version) else version
    return re.split(r"[.~+-]", upstream, maxsplit=1)[0]


def expand_versions(text: str, versions: dict[str, str]) -> str:
    """`text` with each `{name}`/`{name.major}` replaced from `versions`; an unknown name is an error."""
    def replace(match: re.Match[str]) -> str:
        name, major = match.group(1), match.group(2)
        if name not in versions:
            raise ValueError(f"{text!r}: {{{name}}} is not in versions ({', '.join(sorted(versions)) or 'none'})")
        return version_major(versions[name]) if major else versions[name]

    return VERSION_PLACEHOLDER.sub(replace, text)


def check_mirror_base(url: str) -> str:
    """A source mirror's base URL: http(s)://host/... or file:///absolute/dir."""
    if urlparse(url).scheme not in MIRROR_SCHEMES:
        raise ValueError(f"{url!r}: a source mirror is http(s):// or file:///absolute/dir "
                         "(serving <base>/sha256/<hex>)")
    problem = remote_url_problem(url)
    if problem:
        raise ValueError(problem)
    return url


MirrorBase = Annotated[str, AfterValidator(check_mirror_base)]


class ProjectConfig(Spec):
    """The engine's keys of pipeline.yaml. Every other key belongs to the project layer
    (engine/layer.py), which validates it with its own model (`read_config`)."""

    jobs: Count | None = None  # make -j inside one task; default: the machine's core count
    workers: Count | None = None  # tasks run at once; default: the core count
    cache_dir: str | None = None  # default: $XDG_CACHE_HOME/pywasm-pipeline
    remote_cache: str | None = None  # shared cache URL (http(s)://, file://, s3://); $PIPELINE_REMOTE_CACHE wins
    remote_readonly: bool = False  # fetch only; $PIPELINE_REMOTE_READONLY=1 forces it
    versions: dict[str, str] = {}  # pinned versions, for templates
    # apt pins, `name=version`; `{name}` and `{name.major}` stand for a `versions` entry, so one
    # pinned version names every package of a family (`clang-{llvm.major}={llvm}`)
    toolchain_packages: list[str] = []
    system_packages: list[str] = []  # apt names, any version (build tools)
    # Where a pinned source is looked for when its recipe's url fails, after the PyPI JSON API's
    # sha256 lookup (README: Sources): base URLs serving <base>/sha256/<hex>, tried in order,
    # then a local folder holding <file name> or sha256/<hex> (relative to the project root).
    source_mirrors: list[MirrorBase] = []
    source_dir: str | None = None
    # Further folders of package recipes (`<name>/meta.yaml`, e.g. Pyodide's `packages/`), after
    # recipes/packages/: a recipe of the same name in an earlier place wins. $PIPELINE_RECIPE_TREES
    # (os.pathsep-separated) comes first of all.
    recipe_trees: list[str] = []

    @field_validator("versions", mode="before")
    @classmethod
    def _versions(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name, version in value.items():
                text_not_number(version, f"version of {name}", name)
        return value

    @field_validator("toolchain_packages")
    @classmethod
    def _expand_pins(cls, pins: list[str], info: ValidationInfo) -> list[str]:
        return [expand_versions(pin, info.data.get("versions", {})) for pin in pins]

    @field_validator("remote_cache")
    @classmethod
    def _remote_cache(cls, value: str | None) -> str | None:
        if value is not None:
            problem = remote_url_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    def job_count(self) -> int:
        return count_setting("PIPELINE_JOBS", self.jobs)

    def worker_count(self) -> int:
        return count_setting("PIPELINE_WORKERS", self.workers)


def count_setting(env_var: str, configured: int | None) -> int:
    """The environment wins over pipeline.yaml; the default is the machine's core count."""
    text = os.environ.get(env_var)
    if text:
        if not text.isdecimal() or not 1 <= int(text) <= 1024:
            raise PipelineError(f"${env_var}: {text!r} is not a count from 1 to 1024")
        return int(text)
    return configured or os.cpu_count() or 1


def remote_url_problem(url: str) -> str | None:
    """Why `url` cannot name a remote cache, or None. Checked at load, before any task runs."""
    parsed = urlparse(url)
    if parsed.scheme not in REMOTE_SCHEMES:
        return f"{url!r}: the scheme must be one of {', '.join(REMOTE_SCHEMES)} (e.g. s3://bucket/prefix)"
    if parsed.scheme in ("http", "https", "s3") and not parsed.netloc:
        what = "a bucket" if parsed.scheme == "s3" else "a host"
        return f"{url!r}: needs {what} after {parsed.scheme}://"
    # file://shared/cache names host "shared" and path /cache: the host would be ignored
    if parsed.scheme == "file" and (parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/")):
        return f"{url!r}: a file:// remote is file:///absolute/dir (no host, no relative path)"
    return None


def read_yaml(file: Path | str, shown_as: Path | str | None = None) -> Any:
    """Parse a YAML file, turning every way it can be unreadable into a one-line RecipeError."""
    file = Path(file)
    shown = shown_as if shown_as is not None else file
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise RecipeError(shown, "", f"cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = f"byte {data[exc.start]:#04x} at offset {exc.start}"
        raise RecipeError(shown, f"line {line}", f"not UTF-8 text ({bad})") from None
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except DuplicateKey as exc:
        raise RecipeError(shown, f"line {exc.line}", str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(shown, where, f"invalid YAML: {problem}") from None


def first_error(file: Path | str, exc: ValidationError) -> RecipeError:
    """Condense pydantic's report to one line naming the field."""
    err = exc.errors()[0]
    field = ".".join(str(part) for part in err["loc"])
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "is required"
    elif "input" in err and repr(err["input"]) not in message:  # a validator's own message may name it
        message = f"{message} (got {err['input']!r})"
    return RecipeError(file, field, message.removeprefix("Value error, "))


REMOTE_ENV = "PIPELINE_REMOTE_CACHE"


def remote_url(configured: str | None) -> str | None:
    """The remote cache: $PIPELINE_REMOTE_CACHE wins over pipeline.yaml's remote-cache."""
    return os.environ.get(REMOTE_ENV) or configured


def read_mapping(file: Path, shown_as: Path | str, not_a_mapping: str) -> dict[Any, Any]:
    data = read_yaml(file, shown_as=shown_as) if file.exists() else {}
    if not isinstance(data, dict):
        raise RecipeError(shown_as, "", not_a_mapping)
    return data


def validate(model: type[SpecModel], data: dict[Any, Any], shown_as: Path | str) -> SpecModel:
    """`data` validated as `model`; every problem is one RecipeError naming the file and field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise first_error(shown_as, exc) from None


def validate_yaml_file(model: type[SpecModel], file: Path, shown_as: Path | str, not_a_mapping: str) -> SpecModel:
    """A YAML mapping validated as `model`; every problem is one RecipeError naming the file and field."""
    return validate(model, read_mapping(file, shown_as, not_a_mapping), shown_as)


def engine_keys() -> set[str]:
    """pipeline.yaml keys the engine reads (kebab-case, or the snake_case name)."""
    return {name for field, info in ProjectConfig.model_fields.items() for name in (field, info.alias or field)}


def read_config(root: Path, layer: ProjectLayer) -> tuple[ProjectConfig, Spec]:
    """pipeline.yaml: the engine's keys as `ProjectConfig`, the rest as the layer's settings
    (with no layer, `NO_LAYER`, any other key is unknown). Errors read alike for both."""
    file = root / "pipeline.yaml"
    data = read_mapping(file, file, "must be a mapping")
    ours = engine_keys()
    config = validate(ProjectConfig, {key: value for key, value in data.items() if key in ours}, file)
    # An engine key the layer's model declares too (e.g. `versions`) reaches it validated.
    shared = {name: getattr(config, name) for name in ProjectConfig.model_fields
              if name in layer.settings_model.model_fields}
    layer_keys = {key: value for key, value in data.items() if key not in ours}
    settings = validate(layer.settings_model, {**layer_keys, **shared}, file)
    check_environment(config)
    return config, settings


def load_config(root: Path, layer: ProjectLayer) -> ProjectConfig:
    """The engine's settings, after checking the whole file (the layer's keys too)."""
    return read_config(root, layer)[0]


READONLY_ENV = "PIPELINE_REMOTE_READONLY"
KEEP_GOING_ENV = "PIPELINE_KEEP_GOING"


def keep_going_requested() -> bool:
    """$PIPELINE_KEEP_GOING=1: load the recipes as a tree, skipping (and listing) those that
    fail to load and their dependents, instead of failing on the first (project mode)."""
    value = os.environ.get(KEEP_GOING_ENV, "")
    if value not in ("", "0", "1"):
        raise PipelineError(f"${KEEP_GOING_ENV}: {value!r} must be 1 (skip recipes that fail to load) or 0")
    return value == "1"


def check_environment(config: ProjectConfig) -> None:
    """Settings the environment overrides are checked at load as well, before any task runs."""
    config.job_count()
    config.worker_count()
    env_url = os.environ.get(REMOTE_ENV)
    problem = remote_url_problem(env_url) if env_url else None
    if problem:
        raise PipelineError(f"${REMOTE_ENV}: {problem}")
    remote_readonly(False)


def remote_readonly(configured: bool) -> bool:
    """Fetch only: pipeline.yaml's remote-readonly, or $PIPELINE_REMOTE_READONLY=1 (wins).
    Any other text would silently mean "read-only" (`false` included): say so instead."""
    value = os.environ.get(READONLY_ENV, "")
    if value not in ("", "0", "1"):
        raise PipelineError(f"${READONLY_ENV}: {value!r} must be 1 (fetch only) or 0")
    return configured or value == "1"


RECIPE_TREES_ENV = "PIPELINE_RECIPE_TREES"


def recipe_trees(root: Path, config: ProjectConfig, first: tuple[Path, ...] = ()) -> tuple[Path, ...]:
    """`first` (a tree being built), $PIPELINE_RECIPE_TREES, then pipeline.yaml's recipe-trees;
    relative ones from the root."""
    given = [str(tree) for tree in first]
    given += [item for item in os.environ.get(RECIPE_TREES_ENV, "").split(os.pathsep) if item]
    trees = []
    for index, item in enumerate(given + config.recipe_trees):
        folder = (root / Path(item).expanduser()).resolve()
        if not folder.is_dir():
            where = (f"${RECIPE_TREES_ENV}" if index < len(given)
                     else f"pipeline.yaml: recipe-trees[{index - len(given)}]")
            raise PipelineError(f"{where}: {item!r} is not a folder of recipes")
        trees.append(folder)
    return tuple(trees)


def project_paths(root: Path, config: ProjectConfig, first_trees: tuple[Path, ...] = ()) -> Paths:
    paths = Paths.for_project(root, config.cache_dir, recipe_trees(root.resolve(), config, first_trees))
    if paths.cache.exists() and not paths.cache.is_dir():
        raise PipelineError(
            f"cache directory {str(paths.cache)!r} (cache-dir, or $PIPELINE_CACHE_DIR) is not a directory")
    for what, place in (("checkout", paths.root), ("cache directory", paths.cache)):
        if any(char.isspace() for char in str(place)):
            # configure scripts and Makefiles (wasi-libc, CPython) split paths at spaces
            raise PipelineError(f"{what} path {str(place)!r} contains whitespace, which autotools builds cannot handle")
    return paths
