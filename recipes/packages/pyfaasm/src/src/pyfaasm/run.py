"""Run one call of a function file: ``FAASM_ENTRY=n python -m pyfaasm.run FILE [ARGS]``.

The file (Python source) runs first, as ``__main__`` for entry 0, so plain scripts behave
as with ``python FILE``; then the function registered for the entry is called. An ``async
def`` function runs to completion in an event loop of the call's own (``asyncio.run``). A
function that raises exits 1 with its traceback on stderr; one that returns an int exits
with it.
"""

from __future__ import annotations

import inspect
import marshal
import os
import sys
import traceback
import types

from pyfaasm import code

ENTRY_ENV = "FAASM_ENTRY"
EXIT_USAGE = 2
READ_SIZE = 1 << 16


def read_source(path: str) -> bytes:
    """The file's bytes in as few WASI calls as reading allows (one open, reads until EOF, close).

    Each file-system call is a round trip to the host's I/O threads (about 0.1 ms each);
    ``open()``, runpy and zipimport's probing take some 30 of them for one small file.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, READ_SIZE):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def compile_file(path: str) -> types.CodeType:
    """The file compiled as ``python FILE`` compiles it (none of this module's ``__future__`` flags)."""
    return compile(read_source(path), path, "exec", dont_inherit=True)


def load_code(path: str) -> types.CodeType:
    """The function file's code through the faasm host's code cache: every call of an invocation
    runs the same file, so only the first compiles it (reading and compiling are most of a short
    call). A cached code object comes from the host; else the file is compiled here and offered to
    the host, before any of its code runs (the host keeps only the main call's offer, made as its
    first host call: no code of a call decides what a later call runs)."""
    from pyfaasm import _host

    key = os.fsencode(path)
    if (cached := _host.get_code(key)) is not None:
        return marshal.loads(cached)
    code_object = compile_file(path)
    _host.set_code(key, marshal.dumps(code_object))
    return code_object


def run_file(path: str, run_name: str, code_object: types.CodeType | None = None) -> dict[str, object]:
    """Run the source file as module ``run_name``, as ``runpy.run_path`` runs a file.

    The module is ``sys.modules[run_name]`` and the file ``sys.argv[0]`` while it runs. Runs
    ``code_object`` if given (the file's, compiled), else compiles the file. Returns the module's globals.
    """
    if code_object is None:
        code_object = compile_file(path)
    module = types.ModuleType(run_name)
    module.__dict__.update(__file__=path, __cached__=None, __loader__=None,
                           __package__=run_name.rpartition(".")[0], __spec__=None)
    saved_module = sys.modules.get(run_name)
    saved_argv0 = sys.argv[0] if sys.argv else None
    sys.modules[run_name] = module
    if sys.argv:
        sys.argv[0] = path
    try:
        exec(code_object, module.__dict__)
    finally:
        if saved_module is None:
            sys.modules.pop(run_name, None)
        else:
            sys.modules[run_name] = saved_module
        if sys.argv and saved_argv0 is not None:
            sys.argv[0] = saved_argv0
    return module.__dict__


def entry_from_env(environ: dict[str, str] | os._Environ[str]) -> int:
    value = environ.get(ENTRY_ENV, str(code.MAIN_ENTRY))
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"pyfaasm.run: {ENTRY_ENV}={value!r} is not an entry number") from None


def user_traceback(exc: BaseException, path: str) -> None:
    """Print the traceback from the first frame of the function file on."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != path:
        tb = tb.tb_next
    if tb is None and isinstance(exc, SyntaxError) and exc.filename == path:
        traceback.print_exception(type(exc), exc, None)  # as `python FILE` reports it: no frames of the runner
        return
    traceback.print_exception(type(exc), exc, tb or exc.__traceback__)


def exit_code(result: object) -> int:
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def call_entry(func: code.EntryFunction) -> object:
    """Call an entry function; the coroutine of an ``async def`` one runs in a fresh event loop."""
    result = func()
    if inspect.iscoroutine(result):
        import asyncio  # only async functions pay for importing asyncio

        result = asyncio.run(result)
    return result


def run(path: str, entry: int, code_cache: bool = False) -> int:
    """Run the file, then its entry function; the exit code. ``code_cache``: the file's code
    through the faasm host's cache (load_code)."""
    try:
        code_object = load_code(path) if code_cache else None
        run_file(path, "__main__" if entry == code.MAIN_ENTRY else "__faasm__", code_object)
        func = code.entry_function(entry)
        if func is None:
            if entry == code.MAIN_ENTRY:
                return 0  # a plain script: its top-level code was the function
            print(f"pyfaasm: {path} registers no function for entry {entry} (use @faasm_func({entry}))",
                  file=sys.stderr)
            return EXIT_USAGE
        return exit_code(call_entry(func))
    except Exception as exc:
        user_traceback(exc, path)
        return 1


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m pyfaasm.run FILE [ARGS...]", file=sys.stderr)
        return EXIT_USAGE
    sys.argv = argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(argv[1]))  # as `python FILE` would
    # The faasm host sets the entry for every call, and serves the code cache.
    return run(argv[1], entry_from_env(os.environ), code_cache=ENTRY_ENV in os.environ)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
