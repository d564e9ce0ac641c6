"""Pre-initialized interpreter snapshots: what runs once at snapshot time and once per call.

python.wasm's C exports (recipes/snapshot/exports.c) call these two functions:

- ``preinitialize(preopen_fds)`` inside ``wasmtime wizer`` (the ``snapshot`` task): imports
  pyfaasm's runner and the preload list (``PYFAASM_PRELOAD``, comma-separated, from
  ``snapshot-preload`` in pipeline.yaml), checks that no file stays open, and freezes the
  heap for the garbage collector so calls do not touch (copy) its pages.
- ``run_call(argv, environ)`` in a fresh instance of the snapshot, once per call: refreshes
  what the snapshot froze that belongs to the call (environment, argv, random state, start
  time), then runs ``python -m pyfaasm.run FILE`` as ``python -m`` would.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import os
import sys
import time

PRELOAD_ENV = "PYFAASM_PRELOAD"
RUNNER_ARGS = ["-m", "pyfaasm.run"]
EXIT_USAGE = 2
MT19937_KEY_BYTES = 624 * 4  # MT19937's state: 624 32-bit words
# The fd scan for files left open at snapshot time; WASI numbers fds from 0 up.
MAX_FD_CHECKED = 1024


class SnapshotError(RuntimeError):
    """The snapshot would carry state it must not (an open file)."""


def preload_list(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    return [name.strip() for name in environ.get(PRELOAD_ENV, "").split(",") if name.strip()]


def open_files(preopen_fds: tuple[int, ...]) -> list[str]:
    """Descriptors open besides stdio and the preopens, named by the file object holding them."""
    holders: dict[int, str] = {}
    for obj in gc.get_objects():
        if hasattr(obj, "fileno") and hasattr(obj, "name") and not getattr(obj, "closed", True):
            try:
                holders.setdefault(obj.fileno(), repr(obj.name))
            except (OSError, ValueError):
                continue
    found = []
    for fd in range(3, MAX_FD_CHECKED):
        if fd in preopen_fds:
            continue
        try:
            os.fstat(fd)
        except OSError:
            continue
        found.append(f"fd {fd} ({holders.get(fd, 'no Python file object')})")
    return found


def preinitialize(preopen_fds: tuple[int, ...]) -> None:
    # Imported for the snapshot. tokenize: a traceback reads the function's source through it.
    import tokenize  # noqa: F401

    import pyfaasm.code
    import pyfaasm.run  # noqa: F401

    for name in preload_list(os.environ):
        importlib.import_module(name)
    # A file object in the snapshot would name an fd that, in a call, is another file
    # (or a preopen): refuse to make such a snapshot.
    left_open = open_files(preopen_fds)
    if left_open:
        raise SnapshotError("files opened during pre-initialization are still open: " + ", ".join(left_open)
                            + f" (close them in the module that opens them, or drop it from {PRELOAD_ENV})")
    sys.stdout.flush()
    sys.stderr.flush()
    gc.collect()
    # Everything alive now is shared by all calls: keep the collector out of those pages.
    gc.freeze()


def refresh_environ(environ: dict[bytes, bytes]) -> None:
    """os.environ (and posix.environ) as this call's WASI environment, not the snapshot's."""
    posix = sys.modules[os.name]
    posix.environ = environ
    data = os.environ._data  # type: ignore[attr-defined]  # bytes -> bytes on POSIX; os.environb shares it
    data.clear()
    data.update(environ)


def reseed() -> None:
    """Random state and start times made at import are the snapshot's: renew them per call."""
    if (random := sys.modules.get("random")) is not None:
        random.seed()  # from os.urandom, i.e. this call's WASI random_get
    if (tempfile := sys.modules.get("tempfile")) is not None:
        tempfile._name_sequence = None  # its RNG is recreated on first use
    if (numpy_random := sys.modules.get("numpy.random")) is not None:
        # The legacy global RandomState (np.random.rand & co.): its whole MT19937 key from the call's
        # urandom (seed() with no argument hashes 128 bits through SeedSequence, ~0.5 ms in wasm).
        numpy = sys.modules["numpy"]
        numpy_random.seed(numpy.frombuffer(os.urandom(MT19937_KEY_BYTES), dtype=numpy.uint32))
    if (logging := sys.modules.get("logging")) is not None:
        # relativeCreated counts from the call's start (time_ns() since 3.13, time() before)
        logging._startTime = time.time_ns() if isinstance(logging._startTime, int) else time.time()


def exit_status(exc: SystemExit) -> int:
    """What the interpreter would exit with for this SystemExit (as Py_Main does)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_call(argv: list[str], environ: dict[bytes, bytes]) -> int:
    """One call: ``argv`` is the call's ``python -m pyfaasm.run FILE [ARGS]``."""
    refresh_environ(environ)
    reseed()
    sys.orig_argv = list(argv)
    try:
        if argv[1:3] != RUNNER_ARGS or len(argv) < 4:
            print(f"pyfaasm snapshot: argv must be python -m pyfaasm.run FILE [ARGS], not {argv!r}", file=sys.stderr)
            return EXIT_USAGE
        from pyfaasm import run

        # As `python -m pyfaasm.run` would: the cwd first on sys.path, argv[0] the module's file.
        sys.path.insert(0, os.getcwd())
        sys.argv = [run.__file__, *argv[3:]]
        return run.main(sys.argv)
    except SystemExit as exc:
        return exit_status(exc)
    finally:
        # What interpreter finalization does under _start: atexit handlers, then flushing.
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
