/* <setjmp.h> for wasm32 with clang's -mllvm -wasm-enable-sjlj (recipes/sjlj.yaml).
 *
 * No setjmp or longjmp function exists: the compiler rewrites each call into the runtime
 * calls of sjlj.c, which unwind with the exception-handling proposal. A file that calls
 * setjmp but was compiled without the flag fails to link (undefined symbol: setjmp)
 * rather than misbehave. */
#ifndef _WASM_SJLJ_SETJMP_H
#define _WASM_SJLJ_SETJMP_H
#ifdef __cplusplus
extern "C" {
#endif

/* 256 bytes, as musl's wasm32 jmp_buf: objects stay compatible with a later wasi-libc. */
typedef struct __jmp_buf_tag {
    unsigned long __area[64];
} __attribute__((aligned(8))) jmp_buf[1];
typedef jmp_buf sigjmp_buf;

int setjmp(jmp_buf) __attribute__((returns_twice));
_Noreturn void longjmp(jmp_buf, int);
int _setjmp(jmp_buf) __attribute__((returns_twice));
_Noreturn void _longjmp(jmp_buf, int);
/* WASI has no signals: the mask argument changes nothing. */
#define sigsetjmp(buffer, savemask) setjmp(buffer)
#define siglongjmp(buffer, value) longjmp(buffer, value)

#ifdef __cplusplus
}
#endif
#endif
