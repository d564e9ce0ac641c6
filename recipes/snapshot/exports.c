/* python.wasm's snapshot exports, linked in by pipeline/link.py (--snapshot-exports).
 *
 * wizer-initialize   `wasmtime wizer` calls this once at build time (recipes/snapshot.yaml):
 *                    C constructors, CPython initialized against the preopened runtime
 *                    root, `site`, then pyfaasm.snapshot.preinitialize() imports pyfaasm and
 *                    the preload list. wizer writes the resulting memory out as a new module.
 * pyfaasm-run-call   one call in a fresh instance of that snapshot: the same work as
 *                    `python -m pyfaasm.run FILE` (argv and FAASM_ENTRY from this call's
 *                    WASI context, input through the faasm host calls); returns the exit code.
 *
 * Only memory and globals survive into the snapshot; the WASI context (args, environment,
 * fds, preopens, clocks, random) is the call's. wasi-libc and CPython copied some of it into
 * memory at initialization; pyfaasm-run-call refreshes each copy before any Python runs:
 *   - environ: wasi-libc read it once into __wasilibc_environ -> dropped and re-read from WASI;
 *     os.environ is rebuilt from it (pyfaasm.snapshot.run_call);
 *   - preopens: wasi-libc's table maps "/func" etc. to fds. This wasi-libc (2022-05) cannot
 *     forget an entry, so the call's preopens are registered again (later entries win) and
 *     the ones seen at snapshot time must still be the same fd with the same name;
 *   - cwd: wasi-libc keeps it in memory -> back to "/", where every WASI program starts;
 *   - argv: read from WASI here (crt1's _start, which normally does it, never runs).
 * _start is untouched: without these exports python.wasm behaves exactly as before.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>
#include <wasi/libc-environ.h>
#include <wasi/libc.h>

extern void __wasm_call_ctors(void);
extern char **environ;

/* Exit codes of pyfaasm-run-call itself (the function's own come from Python). */
#define EXIT_NOT_INITIALIZED 125
#define EXIT_PREOPENS_CHANGED 126

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
    /* crt1's _start would run the constructors (wasi-libc's environ and preopens among them). */
    __wasm_call_ctors();
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
    snapshot_ready = 1;
}

/* Make wasi-libc's preopen table describe this call's preopens; 0 if it cannot. */
static int refresh_preopens(void) {
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
    for (size_t i = 0; i < count; ++i)
        if (__wasilibc_register_preopened_fd((int)now[i].fd, now[i].name) != 0)
            return 0;
    return 1;
}

__attribute__((export_name("pyfaasm-run-call")))
int32_t pyfaasm_snapshot_run_call(void) {
    if (!snapshot_ready || !Py_IsInitialized()) {
        fputs("pyfaasm snapshot: pyfaasm-run-call needs a module pre-initialized by wizer-initialize\n", stderr);
        return EXIT_NOT_INITIALIZED;
    }
    if (!refresh_preopens())
        return EXIT_PREOPENS_CHANGED;
    /* wasi-libc's own pair for pre-initialized programs: drop the snapshot's environ, read this call's. */
    __wasilibc_deinitialize_environ();
    __wasilibc_maybe_reinitialize_environ_eagerly();
    if (chdir("/") != 0)
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
