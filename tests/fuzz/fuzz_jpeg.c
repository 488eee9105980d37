/*
 * fuzz_jpeg.c - libFuzzer harness for the JPEG decoder (image/jpeg.c over libjpeg-turbo; see
 * README.md). Every input must give a status or an image whose every pixel can be read; a
 * crafted header must never make the decoder allocate far more than the file could fill (the
 * run's -rss_limit_mb catches that).
 */
#include <stddef.h>
#include <stdint.h>

#include "blazeneo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bzn_image img;
    bzn_error err;
    if (bzn_image_decode_jpeg(data, size, &img, &err) == BZN_OK) {
        volatile uint8_t sink = 0;
        const size_t n = (size_t)img.width * img.height * img.channels;
        for (size_t i = 0; i < n; i += 61) sink ^= img.pixels[i];
        sink ^= img.pixels[n - 1];
        (void)sink;
        bzn_image_free(&img);
    }
    return 0;
}
