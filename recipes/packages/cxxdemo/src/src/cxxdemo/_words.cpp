// unique_sorted("b a b") -> ["a", "b"]: std::string, std::vector and <algorithm> in wasm32.
// nth_word("a b", 5): std::vector::at throws std::out_of_range three frames down; the module's
// boundary turns it into IndexError with the C++ message (C++ exceptions in wasm32).
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

static std::vector<std::string> split(const char* text) {
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
    return words;
}

static PyObject* unique_sorted(PyObject*, PyObject* args) {
    const char* text = nullptr;
    if (!PyArg_ParseTuple(args, "s", &text)) return nullptr;
    std::vector<std::string> words = split(text);
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    PyObject* result = PyList_New(static_cast<Py_ssize_t>(words.size()));
    if (result == nullptr) return nullptr;
    for (size_t i = 0; i < words.size(); ++i) {
        PyList_SET_ITEM(result, static_cast<Py_ssize_t>(i), PyUnicode_FromString(words[i].c_str()));
    }
    return result;
}

[[gnu::noinline]] static const std::string& word_at(const std::vector<std::string>& words, size_t n) {
    return words.at(n);  // throws std::out_of_range past the end
}

[[gnu::noinline]] static std::string checked_word(const char* text, Py_ssize_t n) {
    if (n < 0) throw std::invalid_argument("n must not be negative");
    return word_at(split(text), static_cast<size_t>(n));
}

static PyObject* nth_word(PyObject*, PyObject* args) {
    const char* text = nullptr;
    Py_ssize_t n = 0;
    if (!PyArg_ParseTuple(args, "sn", &text, &n)) return nullptr;
    try {
        return PyUnicode_FromString(checked_word(text, n).c_str());
    } catch (const std::out_of_range& error) {
        PyErr_Format(PyExc_IndexError, "word %zd: %s", n, error.what());
    } catch (const std::exception& error) {
        PyErr_SetString(PyExc_ValueError, error.what());
    }
    return nullptr;
}

static PyMethodDef methods[] = {
    {"unique_sorted", unique_sorted, METH_VARARGS, "Sorted unique space-separated words."},
    {"nth_word", nth_word, METH_VARARGS, "The n-th space-separated word; IndexError past the end."},
    {nullptr, nullptr, 0, nullptr},
};

static PyModuleDef module = {PyModuleDef_HEAD_INIT, "cxxdemo._words", nullptr, -1, methods};

PyMODINIT_FUNC PyInit__words(void) { return PyModule_Create(&module); }
