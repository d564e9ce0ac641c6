"""Recipe files -> validated models, one per task."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import RecipeError
from ..paths import PACKAGE_GROUP, Paths
from .config import validate_yaml_file
from .spec import Builder, Recipe, canonical_name, check_recipe, pick_builder


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
    """recipes/*.yaml, recipes/packages/*.yaml and Pyodide's recipes/packages/*/meta.yaml, then
    each recipe tree's */meta.yaml, in that order (the first recipe of a name wins)."""
    if not paths.recipes.is_dir():  # not a project (a wrong --root), or a checkout missing its recipes
        raise RecipeError(f"{paths.recipes.name}/", "", f"no such folder in {paths.root}: is this the project root?")
    packages = paths.recipes / PACKAGE_GROUP
    pyodide = sorted(packages.glob("*/meta.yaml"))  # any folder name Pyodide allows, dots included
    trees = [file for tree in paths.recipe_trees for file in sorted(tree.glob("*/meta.yaml"))]
    return yaml_files(paths.recipes) + yaml_files(packages) + pyodide + trees


def shown_path(paths: Paths, file: Path) -> str:
    """How errors name a recipe file: relative to the project, or whole when outside it."""
    return str(file.relative_to(paths.root)) if file.is_relative_to(paths.root) else str(file)


def tree_of(paths: Paths, file: Path) -> Path | None:
    """The recipe tree a file belongs to, if it is not one of the project's own."""
    return next((tree for tree in paths.recipe_trees if file.is_relative_to(tree)), None)


# Why a source must not be a folder of this machine outside the checkout, and what to do instead.
EXTERNAL_SOURCE = ("its key would depend on files of this machine outside any checkout; an external source is "
                   "a pinned `url:` with its `sha256:` (a file:// URL will do; pipeline.yaml's `source-dir:` "
                   "can hold the file)")


def check_inside(paths: Paths, rel: str, field: str, target: Path, roots: list[Path], given: str = "",
                 why: str = "") -> None:
    resolved = target.resolve()
    if not any(resolved.is_relative_to(root.resolve()) for root in roots):
        allowed = " or ".join(shown_path(paths, root) + "/" for root in roots)
        because = f": {why}" if why else ""
        raise RecipeError(rel, field, f"{given or repr(target.name)} lies outside {allowed}{because}")


def check_files(paths: Paths, entry: RecipeFile) -> None:
    """Patches must live in the recipe tree or third-party/; inputs in the project."""
    recipe, rel = entry.recipe, entry.rel
    if recipe.source is not None:
        for index, patch in enumerate(recipe.source.patches):
            target = entry.folder / patch
            field = f"source.patches[{index}]"
            check_inside(paths, rel, field, target, [paths.recipes, paths.third_party, *paths.recipe_trees])
            if not target.is_file():
                raise RecipeError(rel, field, f"patch file {patch!r} does not exist")
        if recipe.source.path is not None:
            check_inside(paths, rel, "source.path", entry.folder / recipe.source.path,
                         [paths.root, *paths.recipe_trees], repr(recipe.source.path), EXTERNAL_SOURCE)
            if not (entry.folder / recipe.source.path).exists():
                raise RecipeError(rel, "source.path", f"{recipe.source.path!r} does not exist")
    for index, item in enumerate(recipe.inputs):
        target = entry.folder / item
        check_inside(paths, rel, f"inputs[{index}]", target, [paths.root, *paths.recipe_trees])
        if not target.exists():
            raise RecipeError(rel, f"inputs[{index}]", f"{item!r} does not exist")


def load_recipe(paths: Paths, file: Path) -> RecipeFile:
    rel = shown_path(paths, file)
    recipe = validate_yaml_file(Recipe, file, rel, "a recipe must be a mapping")
    check_recipe(recipe, rel)
    in_packages = file.parent != paths.recipes
    task = f"{PACKAGE_GROUP}:{recipe.name}" if in_packages else recipe.name
    if not in_packages and recipe.name == PACKAGE_GROUP:
        raise RecipeError(rel, "package.name", f"{PACKAGE_GROUP!r} is reserved for the package group")
    entry = RecipeFile(task, file, rel, recipe, pick_builder(recipe, in_packages))
    check_files(paths, entry)
    for index, program in enumerate(recipe.requirements.executable):
        if shutil.which(program) is None:
            raise RecipeError(rel, f"requirements.executable[{index}]",
                              f"needs {program!r}, which is not installed here")
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
    # canonical (PEP 503) name of each package recipe so far -> its entry and recipe tree (None: the project's)
    packages: dict[str, tuple[RecipeFile, Path | None]] = {}
    for file in find_recipe_files(paths):
        tree = tree_of(paths, file)
        earlier = packages.get(canonical_name(name_from_path(file)))
        if tree is not None and earlier is not None and earlier[1] != tree:
            continue  # layered: a recipe of this name came earlier (the project's own, or an earlier tree)
        try:
            entry = load_recipe(paths, file)
            if entry.recipe.package.disabled or entry.recipe.build.type == "cpython_module":
                why = ("package._disabled: the recipe says it does not build" if entry.recipe.package.disabled
                       else "build.type: cpython_module: CPython's own modules are built into the interpreter")
                if failures is not None:
                    failures.append(Unloadable(entry.rel, name_from_path(file), RecipeError(entry.rel, "", why)))
                continue
            if entry.task in entries:
                other = entries[entry.task].rel
                raise RecipeError(entry.rel, "package.name", f"duplicate name {entry.recipe.name!r} (also in {other})")
            same = packages.get(canonical_name(entry.recipe.name)) if entry.is_package else None
            if same is not None:
                raise RecipeError(entry.rel, "package.name", f"{entry.recipe.name!r} and {same[0].recipe.name!r} (in "
                                  f"{same[0].rel}) are one package name (PEP 503 normalisation)")
        except RecipeError as exc:
            if failures is None:
                raise
            failures.append(Unloadable(shown_path(paths, file), name_from_path(file), exc))
            continue
        entries[entry.task] = entry
        if entry.is_package:
            packages[canonical_name(entry.recipe.name)] = (entry, tree)
    return entries
