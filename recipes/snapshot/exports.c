/* python.wasm's snapshot exports, compiled by pipeline.wasmbuild.exports and linked in by the link step.
 *
 * wizer-initialize   `wasmtime wizer` calls this once at build time (recipes/snapshot.yaml):
 *                    CPython initialized against the preopened runtime root, `site`, then
 *                    pyfaasm.snapshot.preinitialize() imports pyfaasm and the preload list.
 *                    wizer writes the resulting memory out as a new module.
 * pyfaasm-run-call   one call in a fresh instance of that snapshot: the same work as
 *                    `python -m pyfaasm.run FILE` (argv and FAASM_ENTRY from this call's
 *                    WASI context, input through the faasm host calls); returns the exit code.
 *
 * Constructors. This wasi-libc's crt1-command `_start` leaves C constructors to the linker:
 * wasm-ld wraps EVERY export of a command module as `__wasm_call_ctors(); export();
 * __wasm_call_dtors()` -- as long as no object calls __wasm_call_ctors itself (then it
 * wraps nothing, and `_start` would run without its constructors). So this file never names
 * __wasm_call_ctors, and both exports get the wrapper:
 *   - at snapshot time, wasi-libc's constructors run before CPython starts, as under _start;
 *   - in each call they run again, against the call's WASI context: environ is read afresh
 *     (__wasilibc_initialize_environ_eagerly), the call's preopens are scanned into libc's
 *     table (__wasilibc_populate_preopens appends; later entries win), clock() restarts.
 *     python.wasm's constructors are exactly those, plus the load hook of the mimalloc inside
 *     CPython's obmalloc, which replays its delayed-message buffer to C stderr: after the
 *     first time, that buffer holds "\n". So C stderr is buffered from the end of
 *     pre-initialization, and run-call drops what the constructors wrote before it starts.
 *     run-call checks that the refresh happened.
 * Destructors. musl's atexit list runs once per process: after __wasm_call_dtors ran at the
 * end of wizer-initialize (running what CPython's start-up registered), a second run in the
 * same memory calls through empty slots and traps. So run-call never returns: it flushes and
 * ends the call with _Exit(code) (WASI proc_exit), as `python` itself ends, and the host
 * reads the code from the exit. Python's own atexit handlers run first (pyfaasm.snapshot).
 *
 * What else the snapshot froze that belongs to the call, refreshed here before any Python:
 *   - preopens from snapshot time stay in libc's table (this wasi-libc, 2022-05, cannot
 *     forget one): each must be the same fd with the same name in the call;
 *   - cwd: wasi-libc keeps it in memory -> back to "/", where every WASI program starts
 *     (chdir only if the snapshot's is another: chdir stats the directory through the host);
 *   - argv: read from WASI here (crt1's _start, which normally does it, never runs);
 *   - os.environ, random state, ...: pyfaasm.snapshot.run_call.
 * _start is untouched: without these exports python.wasm behaves exactly as before.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

extern char **environ;

/* Exit codes of pyfaasm-run-call itself (the function's own come from Python); WASI's
   proc_exit takes 0..125, and the host keeps 124/125 for time limits and traps. */
#define EXIT_NOT_INITIALIZED 120
#define EXIT_PREOPENS_CHANGED 121

#define MAX_PREOPENS 32
#define MAX_PREOPEN_NAME 256

typedef struct {
    __wasi_fd_t fd;
    char name[MAX_PREOPEN_NAME];
} preopen_t;

/* The preopens wasi-libc registered while the snapshot was made. */
static preopen_t snapshot_preopens[MAX_PREOPENS];
static size_t snapshot_preopen_count;
static int snapshot_ready;
/* libc's environ array at snapshot time: a call that still has it was not refreshed. */
static char **snapshot_environ;
/* C stderr's buffer between the snapshot and a call's start (see "Constructors" above). */
static char constructor_stderr[BUFSIZ];

static void fail(const char *what) {
    fprintf(stderr, "pyfaasm snapshot: %s\n", what);
    fflush(stderr);
    abort(); /* a trap: wizer reports it and writes no snapshot */
}

/* The directory preopened at fd (its guest path), or 0 if fd is not a preopened dir. */
static int preopen_name(__wasi_fd_t fd, char *name, size_t size) {
    __wasi_prestat_t prestat;
    if (__wasi_fd_prestat_get(fd, &prestat) != __WASI_ERRNO_SUCCESS || prestat.tag != __WASI_PREOPENTYPE_DIR)
        return 0;
    size_t len = prestat.u.dir.pr_name_len;
    if (len + 1 > size || __wasi_fd_prestat_dir_name(fd, (uint8_t *)name, len) != __WASI_ERRNO_SUCCESS)
        return 0;
    name[len] = '\0';
    return 1;
}

/* Preopened fds are numbered from 3 up, without gaps (WASI's convention, and wasi-libc's scan). */
static size_t list_preopens(preopen_t *found, size_t capacity) {
    size_t count = 0;
    for (__wasi_fd_t fd = 3; count < capacity && preopen_name(fd, found[count].name, MAX_PREOPEN_NAME); ++fd)
        found[count++].fd = fd;
    return count;
}

/* This instance's WASI args as a list of str (bytes decoded like CPython decodes argv). */
static PyObject *wasi_argv(void) {
    __wasi_size_t argc, size;
    if (__wasi_args_sizes_get(&argc, &size) != __WASI_ERRNO_SUCCESS)
        return PyErr_Format(PyExc_OSError, "args_sizes_get failed");
    char **ptrs = calloc(argc + 1, sizeof(char *));
    char *buf = malloc(size ? size : 1);
    PyObject *list = NULL;
    if (ptrs == NULL || buf == NULL) {
        PyErr_NoMemory();
    } else if (__wasi_args_get((uint8_t **)ptrs, (uint8_t *)buf) != __WASI_ERRNO_SUCCESS) {
        PyErr_Format(PyExc_OSError, "args_get failed");
    } else if ((list = PyList_New(0)) != NULL) {
        for (__wasi_size_t i = 0; i < argc; ++i) {
            PyObject *arg = PyUnicode_DecodeFSDefault(ptrs[i]);
            if (arg == NULL || PyList_Append(list, arg) < 0) {
                Py_XDECREF(arg);
                Py_CLEAR(list);
                break;
            }
            Py_DECREF(arg);
        }
    }
    free(ptrs);
    free(buf);
    return list;
}

/* libc's environ (already re-read from WASI) as {bytes: bytes}, like posix.environ. */
static PyObject *environ_dict(void) {
    PyObject *dict = PyDict_New();
    for (char **entry = environ; dict != NULL && entry != NULL && *entry != NULL; ++entry) {
        const char *eq = strchr(*entry, '=');
        if (eq == NULL)
            continue;
        PyObject *key = PyBytes_FromStringAndSize(*entry, eq - *entry);
        PyObject *value = PyBytes_FromString(eq + 1);
        if (key == NULL || value == NULL || PyDict_SetDefault(dict, key, value) == NULL)
            Py_CLEAR(dict); /* first value wins, as in posixmodule.c */
        Py_XDECREF(key);
        Py_XDECREF(value);
    }
    return dict;
}

/* Call pyfaasm.snapshot.<name>(*args); NULL with the exception set on failure. */
static PyObject *call_snapshot_module(const char *name, PyObject *args) {
    PyObject *module = PyImport_ImportModule("pyfaasm.snapshot");
    if (module == NULL)
        return NULL;
    PyObject *func = PyObject_GetAttrString(module, name);
    Py_DECREF(module);
    if (func == NULL)
        return NULL;
    PyObject *result = PyObject_CallObject(func, args);
    Py_DECREF(func);
    return result;
}

__attribute__((export_name("wizer-initialize")))
void pyfaasm_snapshot_initialize(void) {
    if (environ == NULL) /* the eager environ constructor did not run: see "Constructors" above */
        fail("C constructors did not run before wizer-initialize (wasm-ld wrapped no export)");
    snapshot_environ = environ;
    snapshot_preopen_count = list_preopens(snapshot_preopens, MAX_PREOPENS);

    PyConfig config;
    PyConfig_InitPythonConfig(&config); /* reads PYTHONHOME, PYTHONHASHSEED, ... from the environment */
    config.parse_argv = 0;
    PyStatus status = PyConfig_SetString(&config, &config.program_name, L"python");
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status))
        fail(status.err_msg ? status.err_msg : "Py_InitializeFromConfig failed");

    PyObject *fds = PyTuple_New((Py_ssize_t)snapshot_preopen_count);
    for (size_t i = 0; fds != NULL && i < snapshot_preopen_count; ++i)
        PyTuple_SET_ITEM(fds, (Py_ssize_t)i, PyLong_FromLong((long)snapshot_preopens[i].fd));
    PyObject *args = fds ? PyTuple_Pack(1, fds) : NULL;
    PyObject *result = args ? call_snapshot_module("preinitialize", args) : NULL;
    Py_XDECREF(fds);
    Py_XDECREF(args);
    if (result == NULL) {
        PyErr_Print();
        fail("pre-initialization failed (traceback above)");
    }
    Py_DECREF(result);
    fflush(NULL);
    setvbuf(stderr, constructor_stderr, _IOFBF, sizeof constructor_stderr);
    __fpurge(stderr); /* stdio already wrote through stderr: make the next write set up the new buffer */
    snapshot_ready = 1;
}

/* The preopens of snapshot time are still in wasi-libc's table: they must mean the same now. */
static int snapshot_preopens_unchanged(void) {
    preopen_t now[MAX_PREOPENS];
    size_t count = list_preopens(now, MAX_PREOPENS);
    for (size_t i = 0; i < snapshot_preopen_count; ++i) {
        const preopen_t *then = &snapshot_preopens[i];
        if (i >= count || now[i].fd != then->fd || strcmp(now[i].name, then->name) != 0) {
            fprintf(stderr, "pyfaasm snapshot: this call must preopen %s as fd %u, as the snapshot did "
                    "(run it without the snapshot otherwise)\n", then->name, (unsigned)then->fd);
            return 0;
        }
    }
    return 1;
}

static int32_t run_call(void) {
    __fpurge(stderr); /* what this call's constructors wrote: mimalloc's stale "\n" */
    setvbuf(stderr, NULL, _IONBF, 0);
    if (!snapshot_ready || !Py_IsInitialized()) {
        fputs("pyfaasm snapshot: pyfaasm-run-call needs a module pre-initialized by wizer-initialize\n", stderr);
        return EXIT_NOT_INITIALIZED;
    }
    if (environ == snapshot_environ) { /* the constructors did not run for this call */
        fputs("pyfaasm snapshot: wasi-libc's constructors did not run before pyfaasm-run-call\n", stderr);
        return EXIT_NOT_INITIALIZED;
    }
    if (!snapshot_preopens_unchanged())
        return EXIT_PREOPENS_CHANGED;
    /* getcwd reads wasi-libc's memory; chdir costs two stat round trips to the host (~0.2 ms). */
    char cwd[2];
    if ((getcwd(cwd, sizeof cwd) == NULL || strcmp(cwd, "/") != 0) && chdir("/") != 0)
        perror("pyfaasm snapshot: chdir /");

    int32_t code = 1;
    PyObject *argv = wasi_argv();
    PyObject *env = argv ? environ_dict() : NULL;
    PyObject *args = env ? PyTuple_Pack(2, argv, env) : NULL;
    PyObject *result = args ? call_snapshot_module("run_call", args) : NULL;
    if (result == NULL) {
        PyErr_Print(); /* a bug in run_call itself: the function's own errors are handled there */
    } else {
        long value = PyLong_AsLong(result);
        code = (value == -1 && PyErr_Occurred()) ? 1 : (int32_t)value;
        PyErr_Clear();
    }
    Py_XDECREF(argv);
    Py_XDECREF(env);
    Py_XDECREF(args);
    Py_XDECREF(result);
    fflush(NULL);
    return code;
}

__attribute__((export_name("pyfaasm-run-call")))
_Noreturn void pyfaasm_snapshot_run_call(void) {
    _Exit(run_call()); /* run_call flushed stdio */
}
