// unique_sorted("b a b") -> ["a", "b"]: std::string, std::vector and <algorithm> in wasm32.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
#include <string>
#include <vector>

static PyObject* unique_sorted(PyObject*, PyObject* args) {
    const char* text = nullptr;
    if (!PyArg_ParseTuple(args, "s", &text)) return nullptr;
    std::vector<std::string> words;
    std::string current;
    for (const char* p = text;; ++p) {
        if (*p == ' ' || *p == '\0') {
            if (!current.empty()) words.push_back(current);
            current.clear();
            if (*p == '\0') break;
        } else {
            current += *p;
        }
    }
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    PyObject* result = PyList_New(static_cast<Py_ssize_t>(words.size()));
    if (result == nullptr) return nullptr;
    for (size_t i = 0; i < words.size(); ++i) {
        PyList_SET_ITEM(result, static_cast<Py_ssize_t>(i), PyUnicode_FromString(words[i].c_str()));
    }
    return result;
}

static PyMethodDef methods[] = {
    {"unique_sorted", unique_sorted, METH_VARARGS, "Sorted unique space-separated words."},
    {nullptr, nullptr, 0, nullptr},
};

static PyModuleDef module = {PyModuleDef_HEAD_INIT, "cxxdemo._words", nullptr, -1, methods};

PyMODINIT_FUNC PyInit__words(void) { return PyModule_Create(&module); }
