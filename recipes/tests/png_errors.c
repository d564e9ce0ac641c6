/* libpng's error paths, which longjmp (recipes/libpng.yaml): a 4x3 RGB image is written to memory
 * and read back; then a PNG with a broken CRC and a truncated one are read with the classic API
 * (png_error longjmps to our setjmp(png_jmpbuf(png)), through a function pointer) and with the
 * simplified API (whose setjmp is inside libpng). Exit 0 only if each case ends as it must. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WIDTH = 4, HEIGHT = 3 };
struct buffer { unsigned char *data; size_t size, at; };

static void write_to(png_structp png, png_bytep data, png_size_t length) {
    struct buffer *out = png_get_io_ptr(png);
    out->data = realloc(out->data, out->size + length);
    memcpy(out->data + out->size, data, length);
    out->size += length;
}
static void flush_nothing(png_structp png) { (void)png; }
static void read_from(png_structp png, png_bytep data, png_size_t length) {
    struct buffer *in = png_get_io_ptr(png);
    if (in->at + length > in->size) png_error(png, "read past the end of the data");
    memcpy(data, in->data + in->at, length);
    in->at += length;
}

static unsigned char pixel(int x, int y, int channel) { return (unsigned char)(x * 40 + y * 70 + channel * 5); }

static struct buffer write_png(void) {
    struct buffer out = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) { puts("write failed"); exit(1); }
    png_set_write_fn(png, &out, write_to, flush_nothing);
    png_set_IHDR(png, info, WIDTH, HEIGHT, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < HEIGHT; y++) {
        unsigned char row[WIDTH * 3];
        for (int x = 0; x < WIDTH; x++)
            for (int c = 0; c < 3; c++) row[x * 3 + c] = pixel(x, y, c);
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return out;
}

static char last_error[200];
static void keep_message(png_structp png, png_const_charp message) {
    snprintf(last_error, sizeof last_error, "%s", message);
    png_longjmp(png, 1);  /* what libpng's default handler does, via its jmp_buf */
}

/* 1: decoded and every pixel right; 0: an error longjmp'd back here; -1: wrong pixels. */
static int read_classic(struct buffer in) {
    volatile int result = -1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, keep_message, NULL);
    png_infop info = png_create_info_struct(png);
    last_error[0] = 0;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return 0;
    }
    png_set_read_fn(png, &in, read_from);
    png_read_info(png, info);
    int good = png_get_image_width(png, info) == WIDTH && png_get_image_height(png, info) == HEIGHT;
    for (int y = 0; y < HEIGHT; y++) {
        unsigned char row[WIDTH * 3];
        png_read_row(png, row, NULL);
        for (int x = 0; x < WIDTH; x++)
            for (int c = 0; c < 3; c++) good &= row[x * 3 + c] == pixel(x, y, c);
    }
    png_read_end(png, NULL);
    result = good ? 1 : -1;
    png_destroy_read_struct(&png, &info, NULL);
    return result;
}

static int read_simplified(struct buffer in, char *message, size_t size) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    int ok = png_image_begin_read_from_memory(&image, in.data, in.size);
    if (ok) {
        image.format = PNG_FORMAT_RGB;
        unsigned char *pixels = malloc(PNG_IMAGE_SIZE(image));
        ok = png_image_finish_read(&image, NULL, pixels, 0, NULL);
        free(pixels);
    }
    snprintf(message, size, "%s", image.message);
    png_image_free(&image);
    return ok;
}

static int failures = 0;
static void check(const char *name, int ok, const char *seen) {
    printf("%s: %s%s\n", name, seen, ok ? "" : " WRONG");
    failures += !ok;
}

int main(void) {
    printf("libpng %s\n", png_get_libpng_ver(NULL));
    struct buffer good = write_png();
    check("write and read back", read_classic(good) == 1, "pixels equal");

    struct buffer bad_crc = {malloc(good.size), good.size, 0};
    memcpy(bad_crc.data, good.data, good.size);
    for (size_t i = 8; i + 8 < good.size; i++)
        if (memcmp(bad_crc.data + i + 4, "IDAT", 4) == 0) {
            size_t length = (size_t)bad_crc.data[i] << 24 | bad_crc.data[i + 1] << 16 | bad_crc.data[i + 2] << 8 |
                            bad_crc.data[i + 3];
            bad_crc.data[i + 8 + length] ^= 0xff;  /* the IDAT chunk's CRC */
            break;
        }
    check("broken CRC, classic API", read_classic(bad_crc) == 0 && strstr(last_error, "CRC"), last_error);

    struct buffer truncated = {good.data, good.size / 2, 0};
    check("truncated, classic API", read_classic(truncated) == 0 && last_error[0], last_error);

    char message[64];
    check("truncated, simplified API", read_simplified(truncated, message, sizeof message) == 0 && message[0],
          message);
    check("good, simplified API", read_simplified(good, message, sizeof message) == 1, "decoded");
    puts(failures ? "FAILED" : "ok");
    return failures != 0;
}
