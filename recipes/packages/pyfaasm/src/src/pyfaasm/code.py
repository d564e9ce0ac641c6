"""The Python function API (the seed's import path, kept so functions run unchanged).

    from pyfaasm.code import await_call, chain_this, faasm_func, faasm_main

    @faasm_func(1)
    def work():
        set_output(get_input().upper())

    @faasm_main
    def main():
        call = chain_this(1, b"data")
        assert await_call(call) == 0
        print(get_call_output(call))

A function file is run by ``python -m pyfaasm.run FILE`` with ``FAASM_ENTRY=n`` in the
environment: the file runs, then the function registered for entry n is called.
``chain_this(n)`` starts the same file with entry n in a fresh instance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyfaasm import _host

MAIN_ENTRY = 0
EntryFunction = Callable[[], Any]

# The entry table of the function file being run (filled by the decorators at import).
_ENTRIES: dict[int, EntryFunction] = {}


def faasm_func(entry: int) -> Callable[[EntryFunction], EntryFunction]:
    """Register the decorated function as entry ``entry`` of this function file."""
    if not isinstance(entry, int) or entry < 0:
        raise ValueError(f"faasm_func: entry must be an int >= 0, not {entry!r}")

    def register(func: EntryFunction) -> EntryFunction:
        _ENTRIES[entry] = func
        return func

    return register


def faasm_main(func: EntryFunction) -> EntryFunction:
    """Register the decorated function as the main entry (0)."""
    return faasm_func(MAIN_ENTRY)(func)


def entry_function(entry: int) -> EntryFunction | None:
    """The function registered for ``entry``, if any."""
    return _ENTRIES.get(entry)


def chain_this(entry: int, input: bytes = b"") -> int:  # noqa: A002 (faasm's name)
    """Start entry ``entry`` of this function file as a new call; returns its call id."""
    return _host.chain_call(entry, bytes(input))


def await_call(call_id: int) -> int:
    """Wait for a chained call to finish; returns its exit code (0 = success)."""
    return _host.await_call(call_id)


def get_input() -> bytes:
    """This call's input bytes."""
    return _host.get_input()


def set_output(data: bytes | str) -> None:
    """Set this call's output bytes (str is UTF-8 encoded)."""
    _host.set_output(data.encode() if isinstance(data, str) else bytes(data))


def get_call_output(call_id: int) -> bytes:
    """The output bytes of a finished call."""
    return _host.get_call_output(call_id)
