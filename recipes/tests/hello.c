#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    char *p = malloc(64);
    if (!p) return 2;
    strcpy(p, "hello, wasm32-wasi");
    printf("%s (argc=%d)\n", p, argc);
    free(p);
    return 0;
}
