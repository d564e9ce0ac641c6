"""Recipe files -> validated models, one per task."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import RecipeError
from ..paths import PACKAGE_GROUP, Paths
from .config import validate_yaml_file
from .spec import Builder, Recipe, check_recipe, pick_builder


@dataclass(frozen=True)
class RecipeFile:
    task: str
    file: Path  # absolute
    rel: str  # as shown in errors, relative to the project root
    recipe: Recipe
    builder: Builder

    @property
    def is_package(self) -> bool:
        return self.task.startswith(PACKAGE_GROUP + ":")

    @property
    def folder(self) -> Path:
        return self.file.parent


def yaml_files(folder: Path) -> list[Path]:
    """`folder/*.yaml` that are files: a Pyodide recipe folder may be named `ruamel.yaml`."""
    return sorted(path for path in folder.glob("*.yaml") if path.is_file())


def find_recipe_files(paths: Paths) -> list[Path]:
    """recipes/*.yaml, recipes/packages/*.yaml and Pyodide's recipes/packages/*/meta.yaml."""
    if not paths.recipes.is_dir():  # not a project (a wrong --root), or a checkout missing its recipes
        raise RecipeError(f"{paths.recipes.name}/", "", f"no such folder in {paths.root}: is this the project root?")
    packages = paths.recipes / PACKAGE_GROUP
    pyodide = sorted(packages.glob("*/meta.yaml"))  # any folder name Pyodide allows, dots included
    return yaml_files(paths.recipes) + yaml_files(packages) + pyodide


def check_inside(paths: Paths, rel: str, field: str, target: Path, roots: list[Path]) -> None:
    resolved = target.resolve()
    if not any(resolved.is_relative_to(root.resolve()) for root in roots):
        allowed = " or ".join(str(root.relative_to(paths.root)) + "/" for root in roots)
        raise RecipeError(rel, field, f"{target.name!r} lies outside {allowed}")


def check_files(paths: Paths, entry: RecipeFile) -> None:
    """Patches must live in the recipe tree or third-party/; inputs in the project."""
    recipe, rel = entry.recipe, entry.rel
    if recipe.source is not None:
        for index, patch in enumerate(recipe.source.patches):
            target = entry.folder / patch
            field = f"source.patches[{index}]"
            check_inside(paths, rel, field, target, [paths.recipes, paths.third_party])
            if not target.is_file():
                raise RecipeError(rel, field, f"patch file {patch!r} does not exist")
        if recipe.source.path is not None and not (entry.folder / recipe.source.path).exists():
            raise RecipeError(rel, "source.path", f"{recipe.source.path!r} does not exist")
    for index, item in enumerate(recipe.inputs):
        target = entry.folder / item
        check_inside(paths, rel, f"inputs[{index}]", target, [paths.root])
        if not target.exists():
            raise RecipeError(rel, f"inputs[{index}]", f"{item!r} does not exist")


def load_recipe(paths: Paths, file: Path) -> RecipeFile:
    rel = str(file.relative_to(paths.root))
    recipe = validate_yaml_file(Recipe, file, rel, "a recipe must be a mapping")
    check_recipe(recipe, rel)
    in_packages = file.parent != paths.recipes
    task = f"{PACKAGE_GROUP}:{recipe.name}" if in_packages else recipe.name
    if not in_packages and recipe.name == PACKAGE_GROUP:
        raise RecipeError(rel, "package.name", f"{PACKAGE_GROUP!r} is reserved for the package group")
    entry = RecipeFile(task, file, rel, recipe, pick_builder(recipe, in_packages))
    check_files(paths, entry)
    return entry


@dataclass(frozen=True)
class Unloadable:
    """A recipe that failed to load, when loading a tree: reported and skipped, with its dependents."""

    rel: str
    name: str  # the name its path gives it (`<name>/meta.yaml`, `<name>.yaml`): how dependents name it
    error: RecipeError


def name_from_path(file: Path) -> str:
    return file.parent.name if file.name == "meta.yaml" else file.stem


def load_recipes(paths: Paths, failures: list[Unloadable] | None = None) -> dict[str, RecipeFile]:
    """Every recipe, validated. The first bad one raises its one-line RecipeError, unless
    `failures` is given (a tree of recipes): then each bad one is recorded there and left out."""
    entries: dict[str, RecipeFile] = {}
    for file in find_recipe_files(paths):
        try:
            entry = load_recipe(paths, file)
            if entry.task in entries:
                other = entries[entry.task].rel
                raise RecipeError(entry.rel, "package.name", f"duplicate name {entry.recipe.name!r} (also in {other})")
        except RecipeError as exc:
            if failures is None:
                raise
            failures.append(Unloadable(str(file.relative_to(paths.root)), name_from_path(file), exc))
            continue
        entries[entry.task] = entry
    return entries
