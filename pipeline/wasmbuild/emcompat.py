"""Emscripten stand-ins, so Pyodide's build scripts run unchanged for wasm32-wasi.

    eval "$("$PYTHON" -m pipeline.wasmbuild.emcompat setup)"    # before a recipe's script
    "$PYTHON" -m pipeline.wasmbuild.emcompat collect            # after a library's script

`setup` writes stand-ins for `emcc`, `em++`, `emar`, `emranlib`, `emnm`, `emstrip`,
`emconfigure`, `emmake` and `emcmake` into $WORK/emcompat/bin and prints the exports a Pyodide
script reads: PATH, $WASM_LIBRARY_DIR, $SIDE_MODULE_CFLAGS/CXXFLAGS/LDFLAGS, $PYODIDE_JOBS,
$PKG_VERSION, $PKG_BUILD_DIR, $PYTHONINCLUDE, $PYVERSION, $DISTDIR, $PYODIDE_ROOT,
$CMAKE_TOOLCHAIN_FILE, $MESON_CROSS_FILE.

Pyodide installs every library into one shared prefix. Here each task has its own output:
$WASM_LIBRARY_DIR is a folder in the task's work dir, filled first with copies of its host
libraries (the `library` outputs among its dependencies, and theirs); `collect` moves what the
script added there into $OUT and lists it (library.json) for the recipes that use it.

The stand-ins map Emscripten onto the toolchain's clang: `-s` settings, `--js-library` and
the like are dropped (they mean nothing outside a browser), `-fPIC` too (everything links
statically), `emcc -shared` writes a static archive (WASI has no dlopen), `emconfigure` adds
`--host=<target>` and refreshes an old `config.sub`, `emcmake` passes a toolchain file.
Settings cross to the stand-ins as one variable, $PIPELINE_EMCOMPAT (`EmSettings`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import PipelineError, report_error
from ..files import write_atomic

EMCOMPAT_ENV = "PIPELINE_EMCOMPAT"
LIBRARY_LIST = "library.json"
STAND_INS = ("emcc", "em++", "emar", "emranlib", "emnm", "emstrip", "emconfigure", "emmake", "emcmake")
FRESH_CONFIG_SUB = Path("/usr/share/misc")  # Debian's autotools-dev: a config.sub that knows wasm32-wasi
# Emscripten-only options with a separate value, and ones standing alone.
DROP_WITH_VALUE = frozenset({"-s", "--js-library", "--pre-js", "--post-js", "--closure", "--embed-file",
                             "--preload-file", "--shell-file", "--extern-pre-js", "--extern-post-js"})
DROP_ALONE = frozenset({"-fPIC", "-fpic", "-pthread", "--bind", "-lembind", "-sSIDE_MODULE", "-gsource-map",
                        "--no-entry", "-fno-semantic-interposition", "-lnodefs.js", "-lidbfs.js"})


@dataclass(frozen=True)
class EmSettings:
    """What the stand-ins need, from `setup` (no pydantic: every compile starts a stand-in)."""

    cc: list[str]
    cxx: list[str]
    cxx_link: list[str]  # libc++ for a C++ link
    ar: str
    ranlib: str
    nm: str
    strip: str
    target: str
    config_site: str
    cmake_toolchain: str
    library_dir: str

    @classmethod
    def from_env(cls) -> EmSettings:
        text = os.environ.get(EMCOMPAT_ENV)
        if text is None:
            raise PipelineError(f"${EMCOMPAT_ENV} is not set: the em* stand-ins run inside a recipe's script")
        return cls(**json.loads(text))


def emscripten_free(args: list[str]) -> list[str]:
    """The arguments without Emscripten's own options."""
    kept: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
        elif arg in DROP_WITH_VALUE:
            skip_next = True
        elif arg in DROP_ALONE or (arg.startswith("-s") and arg[2:3].isupper()) or arg.startswith("--js-"):
            pass
        else:
            kept.append(arg)
    return kept


def output_of(args: list[str]) -> str | None:
    if "-o" in args and args.index("-o") + 1 < len(args):
        return args[args.index("-o") + 1]
    return next((arg[2:] for arg in args if arg.startswith("-o") and len(arg) > 2), None)


def archive_instead(settings: EmSettings, args: list[str]) -> int:
    """`emcc -shared -o libx.so a.o b.o`: a static archive (there and as libx.a beside it)."""
    out = output_of(args)
    if out is None:
        print("emcc (stand-in): -shared without -o", file=sys.stderr)
        return 1
    members = [arg for arg in args if arg.endswith((".o", ".obj", ".a")) and os.path.exists(arg)]
    if os.path.exists(out):
        os.unlink(out)
    code = subprocess.run([settings.ar, "rcs", out, *members], check=False).returncode
    stem = Path(out)
    if code == 0 and ".so" in stem.suffixes:
        shutil.copyfile(out, stem.with_name(stem.name.split(".so")[0] + ".a"))
    return code


def compile_or_link(settings: EmSettings, cxx: bool, args: list[str]) -> int:
    args = emscripten_free(args)
    if "-shared" in args:
        return archive_instead(settings, args)
    command = list(settings.cxx if cxx else settings.cc)
    links = not {"-c", "-E", "-S", "-M", "-MM"} & set(args)
    if cxx and links:
        args = [*args, *settings.cxx_link]
    return subprocess.run([*command, *args], check=False).returncode


def refresh_config_sub(configure: Path) -> None:
    """An autotools package from before wasm32-wasi existed: give it Debian's newer config.sub
    and config.guess (as dh_update_autotools_config does)."""
    if not (FRESH_CONFIG_SUB / "config.sub").is_file():
        return
    for name in ("config.sub", "config.guess"):
        for old in [*configure.parent.glob(name), *configure.parent.glob(f"*/{name}")]:
            shutil.copyfile(FRESH_CONFIG_SUB / name, old)


def tool_env(settings: EmSettings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CC="emcc", CXX="em++", AR="emar", RANLIB="emranlib", NM="emnm", STRIP="emstrip",
               CONFIG_SITE=settings.config_site, PKG_CONFIG_PATH="",
               PKG_CONFIG_LIBDIR=os.path.join(settings.library_dir, "lib", "pkgconfig"))
    return env


def configure(settings: EmSettings, args: list[str]) -> int:
    if not args:
        print("emconfigure (stand-in): no command", file=sys.stderr)
        return 2
    if Path(args[0]).name == "configure":
        refresh_config_sub(Path(args[0]))
        if not any(arg == "--host" or arg.startswith("--host=") for arg in args):
            args = [*args, f"--host={settings.target}"]
    return subprocess.run(args, env=tool_env(settings), check=False).returncode


def cmake(settings: EmSettings, args: list[str]) -> int:
    """`emcmake cmake ...`: the toolchain's cmake file, with the stand-ins as compilers."""
    own = Path(settings.library_dir).parent / "emcompat" / "toolchain.cmake"
    bin_dir = Path(shutil.which("emcc") or "emcc").parent
    write_atomic(own, f'include("{settings.cmake_toolchain}")\n'
                      f'set(CMAKE_C_COMPILER "{bin_dir}/emcc")\nset(CMAKE_CXX_COMPILER "{bin_dir}/em++")\n'
                      f'list(APPEND CMAKE_FIND_ROOT_PATH "{settings.library_dir}")\n')
    return subprocess.run([*args[:1], f"-DCMAKE_TOOLCHAIN_FILE={own}", *args[1:]], env=tool_env(settings),
                          check=False).returncode


def run_stand_in(name: str, args: list[str]) -> int:
    settings = EmSettings.from_env()
    simple = {"emar": settings.ar, "emranlib": settings.ranlib, "emnm": settings.nm, "emstrip": settings.strip}
    if name in simple:
        return subprocess.run([simple[name], *args], check=False).returncode
    if name in ("emcc", "em++"):
        return compile_or_link(settings, name == "em++", args)
    if name == "emconfigure":
        return configure(settings, args)
    if name == "emmake":
        return subprocess.run(args, env=tool_env(settings), check=False).returncode
    return cmake(settings, args)


# --- setup and collect (run by the builder, with the build context) ------------------------

def library_outputs(deps: dict[str, str]) -> list[Path]:
    """The outputs of library recipes among `deps`, and of their own host libraries (in order)."""
    found: list[Path] = []
    for out in map(Path, deps.values()):
        listing = out / LIBRARY_LIST
        if not listing.is_file():
            continue
        build = out.parents[1]  # build/packages/<name> -> build
        for rel in json.loads(listing.read_text())["host"]:
            if build / rel not in found:
                found.append(build / rel)
        if out not in found:
            found.append(out)
    return found


def fill_library_dir(library_dir: Path, libraries: list[Path]) -> list[str]:
    """Copies of the host libraries' files; the relative names placed there."""
    placed = []
    for library in libraries:
        for rel in json.loads((library / LIBRARY_LIST).read_text())["files"]:
            (library_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(library / rel, library_dir / rel, follow_symlinks=False)
            placed.append(rel)
    return placed


def setup() -> str:
    from .context import WasmBuildContext
    from .contracts import BuildInfo

    ctx = WasmBuildContext.read(Path(os.environ["RECIPE_JSON"]))
    work, tc = Path(os.environ["WORK"]), ctx.toolchain
    bin_dir, library_dir = work / "emcompat" / "bin", work / "wasm-library"
    library_dir.mkdir(parents=True, exist_ok=True)
    libraries = library_outputs(ctx.deps)
    placed = fill_library_dir(library_dir, libraries)
    build = Path(ctx.cpython).parent
    write_atomic(work / "emcompat" / "host.json", json.dumps(
        {"placed": sorted(set(placed)), "host": [str(lib.relative_to(build)) for lib in libraries]}))
    toolchain_out = next((Path(out) for out in ctx.deps.values() if (Path(out) / "toolchain.json").is_file()),
                         build / "toolchain")
    settings = EmSettings(
        cc=[*tc.c_compiler(ctx.recipe.build.exceptions), "-I" + str(library_dir / "include")],
        cxx=[*tc.cxx_compiler(ctx.recipe.build.exceptions), "-I" + str(library_dir / "include")],
        cxx_link=["-lc++", "-lc++abi"],
        ar=tc.ar, ranlib=tc.ranlib, nm=tc.nm, strip=tc.strip, target=tc.target,
        config_site=str(toolchain_out / "config.site"), cmake_toolchain=str(toolchain_out / "cmake-toolchain.cmake"),
        library_dir=str(library_dir),
    )
    code_root = Path(__file__).resolve().parents[2]
    for name in STAND_INS:
        write_atomic(bin_dir / name, f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(code_root))} exec "
                                     f"{shlex.quote(sys.executable)} -m pipeline.wasmbuild.emcompat {name} \"$@\"\n",
                     mode=0o755)
    info_file = Path(ctx.cpython) / "build-info.json"
    include = str(Path(ctx.cpython) / BuildInfo.read(info_file).include) if info_file.is_file() else ""
    version = Path(include).name.removeprefix("python")  # the X.Y of python.wasm's headers
    (work / "dist").mkdir(exist_ok=True)
    (work / "pyodide-root").mkdir(exist_ok=True)
    exports = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "WASM_LIBRARY_DIR": str(library_dir),
        "SIDE_MODULE_CFLAGS": "-O2", "SIDE_MODULE_CXXFLAGS": "-O2", "SIDE_MODULE_LDFLAGS": "",
        "PYODIDE_JOBS": os.environ.get("JOBS", "1"),
        "PKG_VERSION": ctx.recipe.version,
        "PKG_BUILD_DIR": os.environ.get("SRC", str(work)),
        "PYTHONINCLUDE": include,
        "PYVERSION": version, "PYMAJOR": version.split(".")[0], "PYMINOR": version.split(".")[-1],
        "DISTDIR": str(work / "dist"),
        "PYODIDE_ROOT": str(work / "pyodide-root"),
        "CMAKE_TOOLCHAIN_FILE": settings.cmake_toolchain,
        "MESON_CROSS_FILE": str(toolchain_out / "meson-cross.ini"),
        # pkg-config finds the host libraries' .pc files, never the build machine's
        "PKG_CONFIG_LIBDIR": str(library_dir / "lib" / "pkgconfig"), "PKG_CONFIG_PATH": "",
        EMCOMPAT_ENV: json.dumps(asdict(settings)),
    }
    print(f"emcompat: stand-ins in {bin_dir}; WASM_LIBRARY_DIR holds {len(libraries)} host librar"
          f"{'y' if len(libraries) == 1 else 'ies'}", file=sys.stderr)
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in exports.items())


def place_file(source: Path, dest: Path, library_dir: Path) -> None:
    """A copy; a link into the library dir stays a link, made relative (`ln -s $WASM_LIBRARY_DIR/...`
    is absolute), any other link is copied as the file it names."""
    if source.is_symlink():
        target = Path(os.path.normpath(source.parent / os.readlink(source)))
        if target.is_relative_to(library_dir):
            dest.symlink_to(os.path.relpath(target, source.parent))
            return
    shutil.copy2(source, dest)


def relocatable_text(path: Path, library_dir: Path) -> None:
    """A pkg-config file names its prefix relative to itself (${pcfiledir}), not the work dir."""
    text = path.read_text(errors="surrogateescape")
    if str(library_dir) in text:
        here = "${pcfiledir}/" + os.path.relpath(library_dir, path.parent)
        path.write_text(text.replace(str(library_dir), here), errors="surrogateescape")


def collect() -> list[str]:
    """What the script added to $WASM_LIBRARY_DIR -> $OUT, listed in $OUT/library.json."""
    work, out = Path(os.environ["WORK"]), Path(os.environ["OUT"])
    library_dir = Path(os.environ["WASM_LIBRARY_DIR"])
    host = json.loads((work / "emcompat" / "host.json").read_text())
    placed = set(host["placed"])
    for stale in library_dir.rglob("*.la"):  # libtool archives name absolute libdirs; nothing here needs them
        stale.unlink()
    added = sorted(str(p.relative_to(library_dir)) for p in library_dir.rglob("*")
                   if (p.is_file() or p.is_symlink()) and str(p.relative_to(library_dir)) not in placed)
    for rel in added:
        if rel.endswith(".pc") and not (library_dir / rel).is_symlink():
            relocatable_text(library_dir / rel, library_dir)
    dist = work / "dist"
    added_from_dist = sorted(str(p.relative_to(dist)) for p in dist.rglob("*") if p.is_file())
    if not added and not added_from_dist:
        raise PipelineError("the script installed nothing into $WASM_LIBRARY_DIR (a library recipe installs there)")
    for rel in added:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        place_file(library_dir / rel, out / rel, library_dir)
    for rel in added_from_dist:  # a shared_library recipe's .so files (archives here) go to lib/
        dest = out / "lib" / Path(rel).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(dist / rel, dest)
        added.append(str(dest.relative_to(out)))
    write_atomic(out / LIBRARY_LIST, json.dumps({"files": sorted(set(added)), "host": host["host"]}, indent=1))
    return added


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in (*STAND_INS, "setup", "collect"):
        print("usage: python -m pipeline.wasmbuild.emcompat setup|collect|emcc|em++|... ARGS", file=sys.stderr)
        return 2
    try:
        if args[0] == "setup":
            sys.stdout.write(setup())
            return 0
        if args[0] == "collect":
            added = collect()
            print(f"emcompat: {len(added)} files into the output ({LIBRARY_LIST})", file=sys.stderr)
            return 0
        return run_stand_in(args[0], args[1:])
    except PipelineError as exc:
        return report_error(exc)


if __name__ == "__main__":
    raise SystemExit(main())
