/* setjmp/longjmp through the sjlj runtime (recipes/sjlj.yaml): each case prints one line, and
 * the program exits 0 only if every case gave the value C says it must. */
#include <setjmp.h>
#include <stdio.h>

static jmp_buf outer, second;
static volatile int frames_left;

__attribute__((noinline)) static void jump_outer(int value) { longjmp(outer, value); }
__attribute__((noinline)) static void two_down(int value) { frames_left++; jump_outer(value); frames_left--; }

/* An inner function with a setjmp of its own: a longjmp to `outer` passes through it. */
__attribute__((noinline)) static int armed_inside(void) {
    jmp_buf mine;
    if (setjmp(mine) == 0) {
        two_down(77);
        return -1;
    }
    return -2;
}

/* Two setjmp call sites in one function: each resumes at its own place. */
__attribute__((noinline)) static int two_sites(void) {
    volatile int sum = 0;
    int got = setjmp(outer);
    if (got == 0) jump_outer(5);
    sum += got;
    got = setjmp(second);
    if (got == 0) longjmp(second, 0);
    return sum + got * 100;
}

/* The error path of libpng and libjpeg: longjmp called through a function pointer. */
typedef void (*error_handler)(jmp_buf, int);
__attribute__((noinline)) static void report_error(jmp_buf where, int code) { longjmp(where, code); }
static error_handler volatile on_error = report_error;

static int check(const char *name, int got, int want) {
    printf("%s: %d%s\n", name, got, got == want ? "" : " WRONG");
    return got != want;
}

int main(void) {
    int failures = 0, got;
    if ((got = setjmp(outer)) == 0) jump_outer(42);
    failures += check("one frame", got, 42);
    frames_left = 0;
    if ((got = setjmp(outer)) == 0) two_down(7);
    failures += check("through two frames", got, 7) + check("frames skipped", frames_left, 1);
    if ((got = setjmp(outer)) == 0) jump_outer(0);
    failures += check("longjmp(env, 0) returns", got, 1);
    if ((got = setjmp(outer)) == 0) armed_inside();
    failures += check("past an inner setjmp", got, 77);
    failures += check("two sites in one function", two_sites(), 105);
    jmp_buf local;
    if ((got = setjmp(local)) == 0) on_error(local, 3);
    failures += check("through a function pointer", got, 3);
    unsigned long pages = __builtin_wasm_memory_size(0);
    volatile int round_trips = 0;
    for (int i = 0; i < 100000; i++) {
        if (setjmp(outer) == 0) jump_outer(1);
        else round_trips++;
    }
    failures += check("round trips", round_trips, 100000);
    failures += check("memory pages grown by them", (int)(__builtin_wasm_memory_size(0) - pages), 0);
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
