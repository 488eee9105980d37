/*
 * jpeg.c - JPEG decoding with libjpeg(-turbo) into 8-bit RGB.
 *
 * libjpeg reports fatal errors by calling err->error_exit, which by default prints the
 * message and calls exit(); warnings go through err->emit_message, which prints them.
 * A library must do neither, so we install our own handlers: they format the message
 * into our buffer and longjmp() back to decode_guarded(), which returns an error. All
 * memory libjpeg allocated is released by jpeg_destroy_decompress(), and the only buffer
 * we allocate ourselves lives in a struct owned by the caller of the setjmp() function,
 * so no local variable changes between setjmp() and longjmp() (which would otherwise
 * have to be volatile).
 *
 * Policy on bad data: libjpeg treats many kinds of damage (truncated file, bad Huffman
 * code, missing markers) as *warnings*, fills the missing part with grey and carries on.
 * For a medical image a half-grey frame is worse than no frame, so every warning about
 * the image data is an error here. Only harmless metadata warnings (unknown JFIF version,
 * broken ICC profile marker) are ignored.
 *
 * Colour: YCbCr, RGB and greyscale JPEGs are converted to RGB by libjpeg. CMYK/YCCK
 * JPEGs (print files, rare) are decoded to CMYK and converted with the naive formula
 * R = (255 - C) * (255 - K) / 255 (Adobe files store inverted ink values; libjpeg
 * tells us through saw_Adobe_marker), the same conversion PIL makes.
 *
 * Memory: the frame header alone decides how much memory a decode takes, and a 1 KB file
 * can claim 16384x16384 pixels. For a progressive (or other multi-scan) JPEG libjpeg
 * allocates the whole image's DCT coefficients (128 bytes per 8x8 block: 1.6 GB for a
 * 16384x16384 colour frame) in jpeg_start_decompress, before it reads any image data; and
 * in arithmetic-coded data a marker may legally end the data early (the decoder then feeds
 * itself zeros), so such a file is decoded to the end, over seconds and up to 2.3 GB, and
 * may even "succeed". So before starting we check the claim against the file's size
 * (plausible_size()). Huffman coding spends at least one bit on every 8x8 block of every
 * component (its DC code; a sequential scan also codes an end of block), so a complete
 * N-byte file holds at most 8N blocks: that bound cannot refuse a complete Huffman-coded
 * JPEG. Arithmetic coding goes below one bit per block only on practically blank images,
 * and those are still decoded when the decode needs at most FREE_DECODE_BYTES. Above that,
 * what passes the check needs no more than a valid Huffman file of its size could: about
 * 8N * (128 + 192) bytes (coefficients plus our RGB output: 2560x the file size, where a
 * real photo needs 10-100x). As a second line, libjpeg's own limit (max_memory_to_use) is
 * set to the coefficient memory we expect plus some slack: with libjpeg-turbo's memory
 * back end (jmemnobs.c, no temporary files) asking for more fails with
 * JERR_NO_BACKING_STORE before the allocation is made.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h> /* needs stdio.h first */
#include <jerror.h>

#include "blazeneo.h"
#include "error.h"

#define MAX_DIMENSION  16384               /* pixels, each side: bounds memory use */
#define MAX_FILE_BYTES ((size_t)256 << 20) /* refuse bigger files outright */
#define MAX_SCANS      500                 /* progressive scans (anti-DoS, like TurboJPEG) */
#define FREE_DECODE_BYTES ((size_t)64 << 20) /* a decode this small needs no plausibility */
#define LIBJPEG_SLACK     ((size_t)64 << 20) /* libjpeg's memory beyond the coefficients */

/* Everything one decode needs. cinfo is written by libjpeg; the rest by us. */
typedef struct {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    struct jpeg_progress_mgr progress;
    jmp_buf jump;      /* where the error handlers return to */
    bzn_status status; /* what to report after a failure */
    char msg[JMSG_LENGTH_MAX + 64];
    uint8_t *pixels;   /* the output image (ours; freed by the caller on failure) */
    uint8_t *cmyk_row; /* one CMYK scanline, for CMYK/YCCK input */
} jpeg_job;

static jpeg_job *job_of(j_common_ptr cinfo) {
    return (jpeg_job *)cinfo->client_data;
}

/* libjpeg's messages start with a capital ("Premature end of JPEG file"); our messages
 * continue after "name: ", so lower-case the first letter of a normal word. */
static void format_libjpeg_message(j_common_ptr cinfo, char *out) {
    cinfo->err->format_message(cinfo, out);
    if (out[0] >= 'A' && out[0] <= 'Z' && out[1] >= 'a' && out[1] <= 'z') out[0] += 'a' - 'A';
}

/* Fatal error: remember the message, then abandon the decode. Never returns. */
static void on_error_exit(j_common_ptr cinfo) {
    jpeg_job *job = job_of(cinfo);
    switch (cinfo->err->msg_code) {
    case JERR_OUT_OF_MEMORY: job->status = BZN_ERR_NOMEM; break;
    case JERR_NO_BACKING_STORE: /* over max_memory_to_use, see plausible_size() */
        job->status = BZN_ERR_NOMEM;
        snprintf(job->msg, sizeof job->msg, "libjpeg needs more than the %ld MB allowed for this image",
                 cinfo->mem->max_memory_to_use / 1000000);
        longjmp(job->jump, 1);
    case JERR_BAD_PRECISION:   /* 12-bit samples */
    case JERR_SOF_UNSUPPORTED: /* lossless and hierarchical JPEG */
        job->status = BZN_ERR_UNSUPPORTED;
        break;
    default: job->status = BZN_ERR_FORMAT;
    }
    format_libjpeg_message(cinfo, job->msg);
    longjmp(job->jump, 1);
}

/* Warnings (level -1) and trace messages (level >= 0). Trace messages are dropped;
 * warnings about damaged image data abort the decode (see the policy above). */
static void on_emit_message(j_common_ptr cinfo, int msg_level) {
    if (msg_level >= 0) return;
    int code = cinfo->err->msg_code;
    if (code == JWRN_JFIF_MAJOR || code == JWRN_BOGUS_ICC) return;
    cinfo->err->num_warnings++;
    on_error_exit(cinfo);
}

/* Never print (only reachable through the default emit_message, which we replaced). */
static void on_output_message(j_common_ptr cinfo) {
    (void)cinfo;
}

/* Called between scans: a progressive JPEG can have thousands of tiny scans, each of
 * which re-reads the whole coefficient buffer; cap them so bad input cannot stall us. */
static void on_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > MAX_SCANS) {
        jpeg_job *job = job_of(cinfo);
        job->status = BZN_ERR_FORMAT;
        snprintf(job->msg, sizeof job->msg, "more than %d scans in a progressive JPEG", MAX_SCANS);
        longjmp(job->jump, 1);
    }
}

/* CMYK scanline to RGB. With the Adobe convention the stored values are inverted
 * (255 = no ink), so the "(255 - x)" is already done. Rounded division by 255. */
static void cmyk_to_rgb(const uint8_t *cmyk, int width, int adobe_inverted, uint8_t *rgb) {
    for (int x = 0; x < width; x++, cmyk += 4, rgb += 3) {
        unsigned k = adobe_inverted ? cmyk[3] : 255u - cmyk[3];
        for (int c = 0; c < 3; c++) {
            unsigned v = adobe_inverted ? cmyk[c] : 255u - cmyk[c];
            rgb[c] = (uint8_t)((v * k + 127) / 255);
        }
    }
}

/* n bytes as "812 B", "1.6 KB", "805.3 MB", "1.6 GB" (decimal units). */
static void format_bytes(double n, char *out, size_t len) {
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (n >= 1000 && u < 4) {
        n /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(out, len, "%.0f B", n);
    else
        snprintf(out, len, "%.1f %s", n, units[u]);
}

/* After jpeg_read_header: refuse a frame header that claims far more image than the file
 * could hold (see "Memory" at the top), before anything big is allocated; then cap
 * libjpeg's whole-image memory at what this image should need. Returns 0, or -1 with
 * job->status and job->msg set. */
static int plausible_size(jpeg_job *job, size_t size) {
    struct jpeg_decompress_struct *ci = &job->cinfo;
    size_t blocks = 0, coef_blocks = 0; /* coded blocks; blocks in the coefficient buffer */
    for (int c = 0; c < ci->num_components; c++) {
        const jpeg_component_info *cp = &ci->comp_info[c];
        size_t bw = cp->width_in_blocks, bh = cp->height_in_blocks;
        size_t hs = (size_t)cp->h_samp_factor, vs = (size_t)cp->v_samp_factor;
        blocks += bw * bh;
        coef_blocks += (bw + hs - 1) / hs * hs * ((bh + vs - 1) / vs * vs); /* as jdcoefct.c */
    }
    int multi_scan = jpeg_has_multiple_scans(ci) != 0;
    size_t coef_bytes = multi_scan ? coef_blocks * sizeof(JBLOCK) : 0;
    size_t out_bytes = (size_t)ci->image_width * ci->image_height * 3;
    size_t min_bytes = blocks / 8 + (blocks % 8 != 0); /* one bit per block */
    if (coef_bytes + out_bytes > FREE_DECODE_BYTES && min_bytes > size) {
        char have[32], want[32], need[32];
        format_bytes((double)size, have, sizeof have);
        format_bytes((double)min_bytes, need, sizeof need);
        format_bytes((double)(multi_scan ? coef_bytes : out_bytes), want, sizeof want);
        job->status = BZN_ERR_FORMAT;
        snprintf(job->msg, sizeof job->msg,
                 "%s claims %ux%u but the file is only %s: refusing a %s %s (its %zu blocks of "
                 "8x8 take at least one bit each, %s)",
                 ci->progressive_mode ? "progressive JPEG" : multi_scan ? "multi-scan JPEG" : "JPEG",
                 (unsigned)ci->image_width, (unsigned)ci->image_height, have, want,
                 multi_scan ? "coefficient buffer" : "image", blocks, need);
        return -1;
    }
    size_t cap = coef_bytes + LIBJPEG_SLACK; /* cannot overflow: coef_bytes < 2^32 */
    ci->mem->max_memory_to_use = cap > (size_t)LONG_MAX ? LONG_MAX : (long)cap;
    return 0;
}

/* The part of the decode that libjpeg may longjmp out of. Only touches *job.
 * Returns 0, or -1 with job->status and job->msg set. */
static int decode_guarded(jpeg_job *job, const uint8_t *data, size_t size) {
    struct jpeg_decompress_struct *ci = &job->cinfo;
    if (setjmp(job->jump)) return -1;

    jpeg_create_decompress(ci); /* keeps ci->err and ci->client_data, zeroes the rest */
    job->progress.progress_monitor = on_progress;
    ci->progress = &job->progress;
    jpeg_mem_src(ci, data, (unsigned long)size);
    jpeg_read_header(ci, TRUE); /* TRUE: a tables-only file is an error */

    if (ci->image_width > MAX_DIMENSION || ci->image_height > MAX_DIMENSION) {
        job->status = BZN_ERR_UNSUPPORTED;
        snprintf(job->msg, sizeof job->msg, "image is %ux%u pixels, more than the %dx%d supported",
                 (unsigned)ci->image_width, (unsigned)ci->image_height, MAX_DIMENSION, MAX_DIMENSION);
        return -1;
    }
    int cmyk = 0;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE: /* libjpeg-turbo expands grey to RGB itself */
    case JCS_YCbCr:
    case JCS_RGB:
        ci->out_color_space = JCS_RGB;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        ci->out_color_space = JCS_CMYK; /* libjpeg cannot make RGB from these */
        cmyk = 1;
        break;
    default:
        job->status = BZN_ERR_UNSUPPORTED;
        snprintf(job->msg, sizeof job->msg, "unsupported JPEG colour space (%d components)",
                 ci->num_components);
        return -1;
    }
    if (plausible_size(job, size) != 0) return -1;

    jpeg_start_decompress(ci); /* allocates the coefficient buffer of a multi-scan JPEG */
    int w = (int)ci->output_width, h = (int)ci->output_height;
    if (ci->output_components != (cmyk ? 4 : 3)) { /* cannot happen; be safe anyway */
        job->status = BZN_ERR_UNSUPPORTED;
        snprintf(job->msg, sizeof job->msg, "unexpected %d output components", ci->output_components);
        return -1;
    }
    /* At most 16384x16384x3, and only for a file big enough to fill it (plausible_size()); a
     * multi-scan JPEG has even been read to the end by now. */
    job->pixels = malloc((size_t)w * (size_t)h * 3);
    if (cmyk) job->cmyk_row = malloc((size_t)w * 4);
    if (!job->pixels || (cmyk && !job->cmyk_row)) {
        job->status = BZN_ERR_NOMEM;
        snprintf(job->msg, sizeof job->msg, "out of memory for a %dx%d image", w, h);
        return -1;
    }

    while (ci->output_scanline < ci->output_height) {
        uint8_t *dst = job->pixels + (size_t)ci->output_scanline * (size_t)w * 3;
        JSAMPROW row = cmyk ? job->cmyk_row : dst;
        if (jpeg_read_scanlines(ci, &row, 1) != 1) { /* only with a suspending source */
            job->status = BZN_ERR_FORMAT;
            snprintf(job->msg, sizeof job->msg, "premature end of JPEG data");
            return -1;
        }
        if (cmyk) cmyk_to_rgb(job->cmyk_row, w, ci->saw_Adobe_marker, dst);
    }
    jpeg_finish_decompress(ci); /* reads up to EOI: may still find damage */
    return 0;
}

/* Recognise a few other image formats, for a friendlier "not a JPEG" message. */
static const char *other_format(const uint8_t *d, size_t n) {
    if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return "a PNG image";
    if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0)) return "a GIF image";
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) return "a WebP image";
    if (n >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0)) return "a TIFF image";
    if (n >= 2 && memcmp(d, "BM", 2) == 0) return "a BMP image";
    return NULL;
}

static bzn_status decode_named(const void *data, size_t size, const char *name, bzn_image *img,
                               bzn_error *err) {
    const uint8_t *d = data;
    if (size == 0) return bzn_fail(err, BZN_ERR_FORMAT, "%s: empty, not a JPEG file", name);
    if (size < 2 || d[0] != 0xFF || d[1] != 0xD8) { /* every JPEG starts with SOI, FF D8 */
        const char *fmt = other_format(d, size);
        if (fmt) return bzn_fail(err, BZN_ERR_FORMAT, "%s: not a JPEG file (looks like %s)", name, fmt);
        if (size < 2)
            return bzn_fail(err, BZN_ERR_FORMAT, "%s: not a JPEG file (1 byte, 0x%02x)", name, d[0]);
        return bzn_fail(err, BZN_ERR_FORMAT, "%s: not a JPEG file (starts with 0x%02x 0x%02x)", name,
                        d[0], d[1]);
    }
    if (sizeof(unsigned long) < sizeof(size_t) && size > (size_t)(unsigned long)-1)
        return bzn_fail(err, BZN_ERR_UNSUPPORTED, "%s: JPEG data too large", name);

    jpeg_job *job = calloc(1, sizeof *job); /* on the heap: libjpeg's structs are big */
    if (!job) return bzn_fail(err, BZN_ERR_NOMEM, "%s: out of memory", name);
    job->cinfo.err = jpeg_std_error(&job->jerr);
    job->jerr.error_exit = on_error_exit;
    job->jerr.emit_message = on_emit_message;
    job->jerr.output_message = on_output_message;
    job->cinfo.client_data = job;

    bzn_status st = BZN_OK;
    if (decode_guarded(job, data, size) == 0) {
        img->pixels = job->pixels;
        img->width = (int)job->cinfo.output_width;
        img->height = (int)job->cinfo.output_height;
        img->channels = 3;
    } else {
        st = bzn_fail(err, job->status, "%s: %s", name, job->msg);
        free(job->pixels);
    }
    jpeg_destroy_decompress(&job->cinfo); /* frees all of libjpeg's memory, in any state */
    free(job->cmyk_row);
    free(job);
    return st;
}

bzn_status bzn_image_decode_jpeg(const void *data, size_t size, bzn_image *img, bzn_error *err) {
    if (!img) return bzn_fail(err, BZN_ERR_ARG, "decode JPEG: output image is NULL");
    memset(img, 0, sizeof *img);
    if (!data && size) return bzn_fail(err, BZN_ERR_ARG, "decode JPEG: data is NULL");
    return decode_named(data, size, "JPEG data", img, err);
}


/* Whole file into memory (JPEGs are small; this also gives libjpeg a simple source). */
static bzn_status read_file(const char *path, uint8_t **out, size_t *out_len, bzn_error *err) {
    char ebuf[128];
    *out = NULL;
    *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return bzn_fail(err, BZN_ERR_IO, "cannot open '%s': %s", path, bzn_errno_text(e, ebuf, sizeof ebuf));
    }
    size_t cap = 0, len = 0;
    uint8_t *buf = NULL;
    bzn_status st = BZN_OK;
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_FILE_BYTES) {
                st = bzn_fail(err, BZN_ERR_UNSUPPORTED, "%s: file larger than %zu MiB, not loading it",
                              path, MAX_FILE_BYTES >> 20);
                break;
            }
            size_t ncap = cap ? 2 * cap : (size_t)1 << 16;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                st = bzn_fail(err, BZN_ERR_NOMEM, "%s: out of memory reading the file", path);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                int e = errno;
                st = bzn_fail(err, BZN_ERR_IO, "cannot read '%s': %s", path,
                              bzn_errno_text(e, ebuf, sizeof ebuf));
            }
            break;
        }
    }
    fclose(f);
    if (st != BZN_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *out_len = len;
    return BZN_OK;
}

bzn_status bzn_image_load_jpeg(const char *path, bzn_image *img, bzn_error *err) {
    if (!img) return bzn_fail(err, BZN_ERR_ARG, "load JPEG: output image is NULL");
    memset(img, 0, sizeof *img);
    if (!path) return bzn_fail(err, BZN_ERR_ARG, "load JPEG: path is NULL");
    uint8_t *data;
    size_t len;
    bzn_status st = read_file(path, &data, &len, err);
    if (st != BZN_OK) return st;
    st = decode_named(data, len, path, img, err);
    free(data);
    return st;
}

void bzn_image_free(bzn_image *img) {
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}
