"""Every file and variable that crosses a process boundary: round trip, version, unknown fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.engine.context import source_digest
from pipeline.engine.contract import Contract, ContractError
from pipeline.engine.spec import Recipe
from pipeline.errors import ExitCode
from pipeline.wasmbuild.context import WasmBuildContext
from pipeline.wasmbuild.contracts import (
    BuildInfo,
    Extension,
    ExtensionList,
    ManifestEntry,
    Provenance,
    RelinkKit,
    RuntimeManifest,
)
from pipeline.wasmbuild.crossargs import (
    CROSS_ENV,
    CompileEvent,
    CrossSettings,
    ExtensionEvent,
    append_event,
    read_events,
)
from pipeline.wasmbuild.llvm import Toolchain

RECIPE = Recipe.model_validate({
    "package": {"name": "markupsafe", "version": "2.1.5"},
    "source": {"pypi": "MarkupSafe", "version": "2.1.5", "sha256": "ab" * 32},
    "build": {"cflags": "-DX=1", "backend-flags": "a=b"},
    "test": {"imports": ["markupsafe"]},
    "about": {"license": "BSD-3-Clause", "PyPI": "https://pypi.org/project/MarkupSafe"},
})
TOOLCHAIN = Toolchain.derive("wasm32-wasi", "19", "/sysroot")


def samples() -> list[Contract]:
    """One filled-in instance of every contract."""
    return [
        TOOLCHAIN,
        WasmBuildContext(task="packages:markupsafe", recipe=RECIPE, deps={"build_cpython": "/b/build_cpython"},
                         package_deps=["/b/packages/six"], cpython="/b/build_cpython", build_python="/b/build_python",
                         toolchain=TOOLCHAIN, source_sha256="ab" * 32),
        BuildInfo(python_version="3.13", interpreter="python3.13", include="runtime/include/python3.13",
                  home="runtime", stdlib="runtime/lib/python3.13"),
        RelinkKit(ldflags=["-z", "stack-size=8388608"], libs=["Modules/expat/libexpat.a", "-Llib", "-lz"],
                  objects=["Programs/python.o"], archive="libpython3.13.a", includes=["runtime/include/python3.13"]),
        Provenance(recipe="markupsafe", version="2.1.5", source_sha256="ab" * 32, license="BSD-3-Clause"),
        ExtensionList(extensions=[Extension(module="markupsafe._speedups", init="PyInit_markupsafe___speedups",
                                            archive="static/markupsafe._speedups.a", cxx=False, ldflags=["-lm"])]),
        RuntimeManifest(files=[ManifestEntry(path="bin/python.wasm", size=3, sha256="cd" * 32, recipe="link",
                                             source_sha256=None, license=None)]),
    ]


@pytest.mark.parametrize("contract", samples(), ids=lambda c: type(c).__name__)
def test_round_trip_through_a_file(contract: Contract, tmp_path: Path) -> None:
    path = contract.write(tmp_path / "sub" / "file.json")
    assert type(contract).read(path) == contract
    assert json.loads(path.read_text())["schema_version"] == type(contract).SCHEMA_VERSION
    assert not list(path.parent.glob(".*.tmp")), "the atomic write leaves no temporary file"


@pytest.mark.parametrize("contract", samples(), ids=lambda c: type(c).__name__)
def test_another_schema_version_is_a_clear_error(contract: Contract, tmp_path: Path) -> None:
    data = json.loads(contract.to_text())
    data["schema_version"] = type(contract).SCHEMA_VERSION + 1
    path = tmp_path / "file.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ContractError) as err:
        type(contract).read(path)
    message = str(err.value)
    assert str(path) in message and "schema version" in message and "rebuild" in message
    assert err.value.exit_code == ExitCode.BAD_INPUT


@pytest.mark.parametrize("contract", samples(), ids=lambda c: type(c).__name__)
def test_an_unknown_field_is_rejected(contract: Contract, tmp_path: Path) -> None:
    data = json.loads(contract.to_text())
    data["surprise"] = 1
    with pytest.raises(ContractError, match="surprise: unknown field"):
        type(contract).from_text(json.dumps(data), "here")


def test_a_file_without_a_version_or_missing_or_torn_is_named() -> None:
    with pytest.raises(ContractError, match="no schema_version"):
        BuildInfo.from_text('{"python_version": "3.13"}', "old.json")
    with pytest.raises(ContractError, match="missing"):
        BuildInfo.read(Path("/nonexistent/build-info.json"))
    with pytest.raises(ContractError, match="not valid JSON"):
        BuildInfo.from_text('{"schema_version": 1, ', "torn.json")
    with pytest.raises(ContractError, match="interpreter: missing"):
        BuildInfo.from_text('{"schema_version": 1, "python_version": "3.13"}', "short.json")


def test_a_nested_unknown_field_is_rejected() -> None:
    data = json.loads(samples()[1].to_text())
    data["recipe"]["build"]["surprise"] = "x"
    with pytest.raises(ContractError, match=r"recipe\.build\.surprise: unknown field"):
        WasmBuildContext.from_text(json.dumps(data), "recipe.json")


def test_build_context_carries_the_validated_recipe() -> None:
    context = WasmBuildContext.from_text(samples()[1].to_text(), "recipe.json")
    assert isinstance(context.recipe, Recipe)
    assert context.recipe.build.backend_flags == "a=b" and context.recipe.about.pypi is not None
    assert context.toolchain.exception_flags.startswith("-fwasm-exceptions ")


def test_toolchain_follows_the_configured_llvm_version() -> None:
    tc = Toolchain.derive("wasm32-wasi", "20", "/s")
    assert tc.cc == "clang-20 --target=wasm32-wasi -Wno-deprecated --sysroot=/s" and tc.ld == "wasm-ld-20"
    assert "schema_version" not in tc.template_vars() and tc.template_vars()["nm"] == "llvm-nm-20"


CROSS = CrossSettings(cc=("clang-19", "--target=wasm32-wasi"), cxx=("clang++-19",), cflags=("-O2",), cxxflags=(),
                      ar="llvm-ar-19", nm="llvm-nm-19", ld="wasm-ld-19", log="/w/cross.jsonl",
                      drop_includes=("/b/build_python/include/python3.13",))


def test_cross_settings_travel_in_one_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = CROSS
    (name, value), = settings.to_env().items()
    monkeypatch.setenv(name, value)
    assert CrossSettings.from_env() == settings
    monkeypatch.delenv(CROSS_ENV)
    with pytest.raises(ContractError, match=r"\$PIPELINE_CROSS is not set"):
        CrossSettings.from_env()


def test_cross_events_append_and_read_back_in_order(tmp_path: Path) -> None:
    log = tmp_path / "cross.jsonl"
    assert read_events(log) == []
    compile_event = CompileEvent(lang="c", cwd="/src", argv=("clang-19", "-c", "a.c"), output="/src/a.o")
    extension = ExtensionEvent(module="pkg._x", init="PyInit_pkg___x", output="/o/_x.so", libs=(), cxx=False)
    append_event(log, compile_event)
    append_event(log, extension)
    assert read_events(log) == [compile_event, extension]
    log.write_text(log.read_text() + '{"kind": "compile", "schema_version": 9}\n')
    with pytest.raises(ContractError, match=r"cross\.jsonl:3: invalid CompileEvent: schema version 9"):
        read_events(log)
    log.write_text('{"kind": "link"}\n')
    with pytest.raises(ContractError, match=r"cross\.jsonl:1: invalid cross-build event: kind 'link'"):
        read_events(log)


def test_cross_settings_are_read_as_strictly_as_the_other_contracts() -> None:
    data = json.loads(CROSS.to_text())
    assert CrossSettings.from_text(json.dumps(data), "env") == CROSS
    for change, error in (
        ({"schema_version": 2}, "schema version 2, this code reads version 1"),
        ({"surprise": 1}, "surprise: unknown field"),
        ({"ar": ["llvm-ar-19"]}, "ar: not a"),
        ({"cc": "clang-19 -O2"}, "cc: not a"),
    ):
        with pytest.raises(ContractError, match=error):
            CrossSettings.from_text(json.dumps({**data, **change}), "$PIPELINE_CROSS")
    del data["nm"]
    with pytest.raises(ContractError, match="nm: missing"):
        CrossSettings.from_text(json.dumps(data), "$PIPELINE_CROSS")


def test_source_digest_is_one_sha256() -> None:
    assert source_digest(None) is None
    assert source_digest("ab" * 32) == "ab" * 32
    digest = source_digest({"src": {"a.py": "cd" * 32}})
    assert digest is not None and len(digest) == 64
