/* bzip2 round-trip smoke test */
#include <stdio.h>
#include <string.h>
#include <bzlib.h>
int main(void) {
    static char in[100000], comp[120000], out[100000];
    for (unsigned i = 0; i < sizeof in; i++) in[i] = "wasm32-wasi bzip2 "[i % 18] ^ (i / 977);
    unsigned clen = sizeof comp, olen = sizeof out;
    if (BZ2_bzBuffToBuffCompress(comp, &clen, in, sizeof in, 9, 0, 0) != BZ_OK) return 1;
    if (BZ2_bzBuffToBuffDecompress(out, &olen, comp, clen, 0, 0) != BZ_OK) return 1;
    if (olen != sizeof in || memcmp(in, out, olen)) return 1;
    printf("bzip2 %s ok: %u -> %u bytes\n", BZ2_bzlibVersion(), (unsigned)sizeof in, clen);
    return 0;
}
