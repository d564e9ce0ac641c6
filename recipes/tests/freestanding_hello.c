/* Freestanding WASI hello: no libc needed; calls the WASI imports directly. */
typedef unsigned int u32;
struct ciovec { const void *buf; u32 len; };
__attribute__((import_module("wasi_snapshot_preview1"), import_name("fd_write")))
int fd_write(int fd, const struct ciovec *iovs, u32 iovs_len, u32 *nwritten);
__attribute__((import_module("wasi_snapshot_preview1"), import_name("proc_exit"), noreturn))
void proc_exit(int code);
static const char msg[] = "hello from freestanding wasm32-wasi\n";
__attribute__((export_name("_start")))
void _start(void) {
    struct ciovec iov = { msg, sizeof(msg) - 1 };
    u32 n = 0;
    int err = fd_write(1, &iov, 1, &n);
    proc_exit(err == 0 && n == sizeof(msg) - 1 ? 0 : 1);
}
