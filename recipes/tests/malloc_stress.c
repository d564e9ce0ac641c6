/* Allocator stress test: >=100k random malloc/realloc/free operations with
 * content checks. Every live block is filled with a pattern derived from its
 * slot id and size; the pattern is verified before realloc (the prefix that
 * must survive) and before free. Prints a checksum and exits non-zero on any
 * corruption or allocation failure. Deterministic (own PRNG). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 4096
#define OPS 150000

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {            /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static unsigned char *blk[SLOTS];
static size_t len[SLOTS];
static uint32_t tag[SLOTS];

static unsigned char pat(uint32_t t, size_t i) { return (unsigned char)((t * 131u) ^ (i * 7u) ^ (i >> 8)); }

static void fill(int s, size_t from) {
    for (size_t i = from; i < len[s]; i++) blk[s][i] = pat(tag[s], i);
}
static int check(int s, size_t upto) {
    for (size_t i = 0; i < upto; i++)
        if (blk[s][i] != pat(tag[s], i)) {
            fprintf(stderr, "corruption: slot %d size %zu at %zu\n", s, len[s], i);
            return 0;
        }
    return 1;
}
/* C17 weak alignment: a block of n bytes must be aligned for any object of
 * size n, i.e. to the largest power of two dividing n (capped at 8). */
static uintptr_t need_align(size_t n) {
    uintptr_t a = 1;
    while (a < 8 && (n % (a * 2)) == 0) a *= 2;
    return a;
}
static size_t rsize(void) {
    uint32_t r = rnd() % 100;
    if (r < 70) return 1 + rnd() % 256;          /* small */
    if (r < 95) return 1 + rnd() % 8192;         /* medium */
    return 1 + rnd() % (64 * 1024);             /* large */
}

int main(void) {
    uint64_t sum = 1469598103934665603ull;       /* FNV-1a over sizes+bytes */
    unsigned long n_malloc = 0, n_realloc = 0, n_free = 0;
    for (long op = 0; op < OPS; op++) {
        int s = rnd() % SLOTS;
        uint32_t kind = rnd() % 3;
        if (!blk[s]) {
            len[s] = rsize();
            tag[s] = rnd();
            blk[s] = (kind == 0) ? calloc(1, len[s]) : malloc(len[s]);
            if (!blk[s]) { fprintf(stderr, "malloc(%zu) failed\n", len[s]); return 1; }
            if (kind == 0) for (size_t i = 0; i < len[s]; i++) if (blk[s][i]) { fprintf(stderr, "calloc not zero\n"); return 1; }
            if (((uintptr_t)blk[s]) % need_align(len[s])) { fprintf(stderr, "misaligned block (size %zu)\n", len[s]); return 1; }
            fill(s, 0);
            n_malloc++;
        } else if (kind == 0) {
            if (!check(s, len[s])) return 1;
            sum = (sum ^ blk[s][len[s] / 2]) * 1099511628211ull;
            free(blk[s]); blk[s] = NULL; n_free++;
        } else {
            size_t nl = rsize();
            size_t keep = nl < len[s] ? nl : len[s];
            if (!check(s, len[s])) return 1;
            unsigned char *p = realloc(blk[s], nl);
            if (!p) { fprintf(stderr, "realloc(%zu) failed\n", nl); return 1; }
            blk[s] = p;
            size_t old = len[s];
            len[s] = nl;
            if (!check(s, keep)) { fprintf(stderr, "realloc lost data (%zu->%zu)\n", old, nl); return 1; }
            fill(s, keep);
            n_realloc++;
        }
        sum = (sum ^ len[s]) * 1099511628211ull;
    }
    for (int s = 0; s < SLOTS; s++)
        if (blk[s]) { if (!check(s, len[s])) return 1; free(blk[s]); n_free++; }
    printf("malloc_stress ok: ops=%d malloc=%lu realloc=%lu free=%lu checksum=%016llx\n",
           OPS, n_malloc, n_realloc, n_free, (unsigned long long)sum);
    return 0;
}
