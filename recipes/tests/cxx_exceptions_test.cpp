// C++ exceptions through the C++ runtime of recipes/cxxrt.yaml: each case prints one line,
// and the program exits 0 only if every case behaved as the C++ standard says.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

static int destroyed = 0;
struct Guard {
    ~Guard() { destroyed++; }
};

[[gnu::noinline]] static void third(int depth) {
    Guard guard;
    throw std::runtime_error("thrown " + std::to_string(depth) + " frames down");
}
[[gnu::noinline]] static void second(int depth) { Guard guard; third(depth); }
[[gnu::noinline]] static void first(int depth) { Guard guard; second(depth); }

// A C library calling back into C++ that throws: qsort's frames (C, no landing pads) are
// unwound through.
static int compare_and_throw(const void *, const void *) { throw 17; }

thread_local std::string per_thread = "thread_local";

static int failures = 0;
static void check(const char *name, bool ok, const std::string &seen) {
    std::printf("%s: %s%s\n", name, seen.c_str(), ok ? "" : " WRONG");
    failures += !ok;
}

int main() {
    try {
        first(3);
    } catch (const std::runtime_error &error) {
        check("through three frames", std::string(error.what()) == "thrown 3 frames down", error.what());
    }
    check("destructors run while unwinding", destroyed == 3, std::to_string(destroyed));
    try {
        try {
            throw std::logic_error("first");
        } catch (...) {
            throw;
        }
    } catch (const std::logic_error &error) {
        check("rethrow", std::string(error.what()) == "first", error.what());
    }
    try {
        (void)std::vector<int>(2).at(5);
    } catch (const std::out_of_range &error) {
        check("library throws (vector::at)", true, "out_of_range");
    }
    std::exception_ptr kept;
    try {
        throw std::invalid_argument("kept");
    } catch (...) {
        kept = std::current_exception();
    }
    try {
        std::rethrow_exception(kept);
    } catch (const std::invalid_argument &error) {
        check("exception_ptr", std::string(error.what()) == "kept", error.what());
    }
    int values[] = {3, 1, 2};
    try {
        std::qsort(values, 3, sizeof(int), compare_and_throw);
    } catch (int code) {
        check("through C frames (qsort)", code == 17, std::to_string(code));
    }
    check("thread_local with a destructor", per_thread == "thread_local", per_thread);
    int caught = 0;
    for (int i = 0; i < 10000; i++) {
        try {
            throw i;
        } catch (int) {
            caught++;
        }
    }
    check("10000 throws caught", caught == 10000, std::to_string(caught));
    if (std::getenv("THROW_THROUGH_NOEXCEPT")) {  // [except.terminate]: std::terminate is called
        std::set_terminate([] {
            std::puts("terminate called");
            std::fflush(stdout);
            std::_Exit(3);
        });
        []() noexcept { first(1); }();
    }
    std::puts(failures ? "FAILED" : "ok");
    return failures != 0;
}
