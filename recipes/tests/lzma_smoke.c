/* liblzma (.xz) round-trip smoke test */
#include <stdio.h>
#include <string.h>
#include <lzma.h>
int main(void) {
    static uint8_t in[100000], comp[120000], out[100000];
    for (unsigned i = 0; i < sizeof in; i++) in[i] = (uint8_t)("wasm32-wasi xz "[i % 15] ^ (i / 977));
    size_t cpos = 0, ipos = 0, opos = 0;
    uint64_t memlimit = UINT64_MAX;
    if (lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, NULL, in, sizeof in, comp, &cpos, sizeof comp) != LZMA_OK) return 1;
    if (lzma_stream_buffer_decode(&memlimit, 0, NULL, comp, &ipos, cpos, out, &opos, sizeof out) != LZMA_OK) return 1;
    if (opos != sizeof in || memcmp(in, out, opos)) return 1;
    printf("liblzma %s ok: %u -> %zu bytes\n", lzma_version_string(), (unsigned)sizeof in, cpos);
    return 0;
}
