/* The runtime clang's wasm setjmp/longjmp lowering calls (-mllvm -wasm-enable-sjlj).
 *
 * In a function that calls setjmp, the compiler gives each setjmp call site a label >= 1
 * and the running invocation an identity (the address of a local), and calls:
 *   __wasm_setjmp(env, label, id)  where setjmp was: arm `env` for this site;
 *   __wasm_longjmp(env, value)     where longjmp was: throw the C longjmp tag;
 *   __wasm_setjmp_test(env, id)    in the function's catch of that tag: the label to resume
 *                                  at if `env` was armed by this invocation, else 0 (the
 *                                  catch throws it on to the callers).
 * The jump target and value travel inside `env` itself, so nested and recursive jumps never
 * share storage. */
#include <setjmp.h>
#include <stdint.h>

struct armed {
    void *invocation;         /* which function invocation armed it */
    uint32_t label;           /* which setjmp call site in it (>= 1) */
    struct {                  /* what the catch pad reads (clang's __WasmLongjmpArgs) */
        void *env;
        int value;
    } jump;
};

_Static_assert(sizeof(struct armed) <= sizeof(jmp_buf), "jmp_buf holds the armed state");

void __wasm_setjmp(void *env, uint32_t label, void *invocation) {
    struct armed *state = env;
    if (label == 0 || invocation == 0)
        __builtin_trap();     /* the compiler never passes these: a corrupt call */
    state->invocation = invocation;
    state->label = label;
}

uint32_t __wasm_setjmp_test(void *env, void *invocation) {
    struct armed *state = env;
    if (state->label == 0 || invocation == 0)
        __builtin_trap();     /* longjmp to a jmp_buf no setjmp armed */
    return state->invocation == invocation ? state->label : 0;
}

_Noreturn void __wasm_longjmp(void *env, int value) {
    struct armed *state = env;
    state->jump.env = env;
    state->jump.value = value ? value : 1;  /* C11 7.13.2.1: longjmp(env, 0) returns 1 */
    __builtin_wasm_throw(1, &state->jump);  /* tag 1: the C longjmp tag, __c_longjmp */
    __builtin_unreachable();
}
