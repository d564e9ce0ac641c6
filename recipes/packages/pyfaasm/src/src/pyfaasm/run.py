"""Run one call of a function file: ``FAASM_ENTRY=n python -m pyfaasm.run FILE [ARGS]``.

The file runs first (as ``__main__`` for entry 0, so plain scripts behave as with
``python FILE``), then the function registered for the entry is called. An ``async def``
function runs to completion in an event loop of the call's own (``asyncio.run``). A
function that raises exits 1 with its traceback on stderr; one that returns an int exits
with it.
"""

from __future__ import annotations

import inspect
import os
import runpy
import sys
import traceback

from pyfaasm import code

ENTRY_ENV = "FAASM_ENTRY"
EXIT_USAGE = 2


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


def run(path: str, entry: int) -> int:
    """Run the file, then its entry function; the exit code."""
    try:
        runpy.run_path(path, run_name="__main__" if entry == code.MAIN_ENTRY else "__faasm__")
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
    return run(argv[1], entry_from_env(os.environ))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
