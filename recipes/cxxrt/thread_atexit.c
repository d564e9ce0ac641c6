/* libc++abi 22 compiles its __cxa_thread_atexit for Linux and Fuchsia only, so a thread_local
 * object with a destructor does not link on wasm32-wasi. With one thread, the thread's exit is
 * the program's: register the destructor like a static's. It is registered after the statics
 * built before it, so it runs before them, as [basic.start.term] asks. */
int __cxa_atexit(void (*destructor)(void *), void *object, void *dso_handle);

int __cxa_thread_atexit(void (*destructor)(void *), void *object, void *dso_handle) {
    return __cxa_atexit(destructor, object, dso_handle);
}
