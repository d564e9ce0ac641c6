/* pyfaasm._host: the runtime's host calls, imported by python.wasm from the wasm host.
 *
 * Every host function lives in ONE import module namespace, "faasm"; wasm-ld keeps
 * these undefined symbols as imports of the linked python.wasm (explicit import names
 * may stay undefined). pipeline/faasm_host.py defines them; other runners define stubs
 * that trap with a clear message. Negative results are errors (see host_error).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#ifndef __wasm__
#error "pyfaasm._host binds wasm host imports: build it for wasm32-wasi"
#endif

#define FAASM_IMPORT(name) __attribute__((import_module("faasm"), import_name(name)))

FAASM_IMPORT("chain_call") int32_t faasm_chain_call(int32_t entry, const uint8_t *input, int32_t len);
FAASM_IMPORT("await_call") int32_t faasm_await_call(int32_t call_id);
FAASM_IMPORT("input_size") int32_t faasm_input_size(void);
FAASM_IMPORT("read_input") int32_t faasm_read_input(uint8_t *buf, int32_t len);
FAASM_IMPORT("write_output") int32_t faasm_write_output(const uint8_t *buf, int32_t len);
FAASM_IMPORT("call_output_size") int32_t faasm_call_output_size(int32_t call_id);
FAASM_IMPORT("read_call_output") int32_t faasm_read_call_output(int32_t call_id, uint8_t *buf, int32_t len);
FAASM_IMPORT("code_cache_size") int32_t faasm_code_cache_size(const uint8_t *path, int32_t path_len);
FAASM_IMPORT("read_code_cache")
int32_t faasm_read_code_cache(const uint8_t *path, int32_t path_len, uint8_t *buf, int32_t len);
FAASM_IMPORT("write_code_cache")
int32_t faasm_write_code_cache(const uint8_t *path, int32_t path_len, const uint8_t *code, int32_t len);

/* Error results; keep in step with pipeline/faasm_host.py. */
#define FAASM_NO_SUCH_CALL (-1)
#define FAASM_NOT_FINISHED (-2)
#define FAASM_BAD_ARGUMENT (-3)
#define FAASM_REFUSED (-4)

static PyObject *host_error(int32_t code, const char *what) {
    const char *why;
    switch (code) {
    case FAASM_NO_SUCH_CALL: why = "no such call"; break;
    case FAASM_NOT_FINISHED: why = "the call has not finished (await_call it first)"; break;
    case FAASM_BAD_ARGUMENT: why = "bad argument"; break;
    case FAASM_REFUSED: why = "refused by the host (call limit reached)"; break;
    default: why = "host error"; break;
    }
    PyErr_Format(PyExc_RuntimeError, "faasm %s failed: %s (%d)", what, why, (int)code);
    return NULL;
}

static int fits_int32(Py_ssize_t len) {
    if (len > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "faasm: data larger than 2 GiB");
        return 0;
    }
    return 1;
}

static PyObject *chain_call(PyObject *self, PyObject *args) {
    int entry;
    Py_buffer input = {0};
    if (!PyArg_ParseTuple(args, "i|y*:chain_call", &entry, &input)) return NULL;
    if (!fits_int32(input.len)) {
        PyBuffer_Release(&input);
        return NULL;
    }
    int32_t call_id = faasm_chain_call(entry, input.buf, (int32_t)input.len);
    PyBuffer_Release(&input);
    if (call_id < 0) return host_error(call_id, "chain_call");
    return PyLong_FromLong(call_id);
}

static PyObject *await_call(PyObject *self, PyObject *args) {
    int call_id;
    if (!PyArg_ParseTuple(args, "i:await_call", &call_id)) return NULL;
    int32_t code = faasm_await_call(call_id);
    if (code < 0) return host_error(code, "await_call");
    return PyLong_FromLong(code);
}

/* Read `size` bytes via `read` into a new bytes object. */
static PyObject *read_bytes(int32_t size, int32_t call_id, int with_id, const char *what) {
    if (size < 0) return host_error(size, what);
    PyObject *data = PyBytes_FromStringAndSize(NULL, size);
    if (data == NULL) return NULL;
    uint8_t *buf = (uint8_t *)PyBytes_AS_STRING(data);
    int32_t got = with_id ? faasm_read_call_output(call_id, buf, size) : faasm_read_input(buf, size);
    if (got != size) {
        Py_DECREF(data);
        return host_error(got < 0 ? got : FAASM_BAD_ARGUMENT, what);
    }
    return data;
}

static PyObject *get_input(PyObject *self, PyObject *unused) {
    return read_bytes(faasm_input_size(), 0, 0, "get_input");
}

static PyObject *get_call_output(PyObject *self, PyObject *args) {
    int call_id;
    if (!PyArg_ParseTuple(args, "i:get_call_output", &call_id)) return NULL;
    return read_bytes(faasm_call_output_size(call_id), call_id, 1, "get_call_output");
}

static PyObject *set_output(PyObject *self, PyObject *args) {
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*:set_output", &data)) return NULL;
    if (!fits_int32(data.len)) {
        PyBuffer_Release(&data);
        return NULL;
    }
    int32_t code = faasm_write_output(data.buf, (int32_t)data.len);
    PyBuffer_Release(&data);
    if (code < 0) return host_error(code, "set_output");
    Py_RETURN_NONE;
}

/* The invocation's compiled function file (marshal data), if the host has it for `path`; else None. */
static PyObject *get_code(PyObject *self, PyObject *args) {
    Py_buffer path;
    if (!PyArg_ParseTuple(args, "y*:get_code", &path)) return NULL;
    if (!fits_int32(path.len)) {
        PyBuffer_Release(&path);
        return NULL;
    }
    PyObject *code = NULL;
    int32_t size = faasm_code_cache_size(path.buf, (int32_t)path.len);
    if (size == FAASM_NO_SUCH_CALL) {
        code = Py_NewRef(Py_None);
    } else if (size < 0) {
        host_error(size, "get_code");
    } else if ((code = PyBytes_FromStringAndSize(NULL, size)) != NULL) {
        int32_t got = faasm_read_code_cache(path.buf, (int32_t)path.len, (uint8_t *)PyBytes_AS_STRING(code), size);
        if (got != size) {
            Py_CLEAR(code);
            host_error(got < 0 ? got : FAASM_BAD_ARGUMENT, "get_code");
        }
    }
    PyBuffer_Release(&path);
    return code;
}

/* Offer the compiled function file to the host for later calls: True if it took it (only as the
   main call's first host call, once per invocation), False if it refused. */
static PyObject *set_code(PyObject *self, PyObject *args) {
    Py_buffer path, code;
    if (!PyArg_ParseTuple(args, "y*y*:set_code", &path, &code)) return NULL;
    PyObject *result = NULL;
    if (fits_int32(path.len) && fits_int32(code.len)) {
        int32_t status = faasm_write_code_cache(path.buf, (int32_t)path.len, code.buf, (int32_t)code.len);
        result = status == 0 ? Py_NewRef(Py_True) : status == FAASM_REFUSED ? Py_NewRef(Py_False)
                                                                             : host_error(status, "set_code");
    }
    PyBuffer_Release(&path);
    PyBuffer_Release(&code);
    return result;
}

static PyMethodDef methods[] = {
    {"chain_call", chain_call, METH_VARARGS,
     "chain_call(entry, input=b'') -> call id: start entry `entry` of this function file."},
    {"await_call", await_call, METH_VARARGS, "await_call(call_id) -> the call's exit code."},
    {"get_input", get_input, METH_NOARGS, "get_input() -> this call's input bytes."},
    {"set_output", set_output, METH_VARARGS, "set_output(data): set this call's output bytes."},
    {"get_call_output", get_call_output, METH_VARARGS,
     "get_call_output(call_id) -> a finished call's output bytes."},
    {"get_code", get_code, METH_VARARGS,
     "get_code(path) -> the function file's compiled code (marshal data) if the host has it, else None."},
    {"set_code", set_code, METH_VARARGS,
     "set_code(path, code) -> whether the host keeps the compiled function file for later calls."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pyfaasm._host", "The runtime's host calls (the \"faasm\" imports).", -1, methods,
};

PyMODINIT_FUNC PyInit__host(void) {
    return PyModule_Create(&module);
}
