/*
 * png.c - writing 8-bit grey or RGB PNG files with libpng, atomically.
 *
 * Written with the library writer (util/writer.c): readers see either the old file or the complete new
 * one, never half of it; on any failure an existing file at `path` is untouched.
 *
 * Like libjpeg, libpng reports errors by calling an error function that must not return
 * (the default one prints and longjmps to png_jmpbuf). Ours stores the message and
 * longjmps to write_guarded(), whose only state lives in the caller's png_job, so no
 * local variable of the function that called setjmp() is changed before the jump.
 * Warnings are not printed; the first one is added to the error message, if any.
 */
#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blazeneo.h"
#include "error.h"

typedef struct {
    jmp_buf jump;
    char msg[256];
    char warning[128]; /* the first warning: often explains the error that follows */
    int in_header;     /* 1 while libpng checks the header: its errors mean bad arguments */
    png_structp png;
    png_infop info;
    FILE *fp;
    const uint8_t *pixels;
    int width, height, channels;
} png_job;

static void on_png_error(png_structp png, png_const_charp message) {
    png_job *job = png_get_error_ptr(png);
    const char *m = message ? message : "libpng error";
    if (job->warning[0])
        snprintf(job->msg, sizeof job->msg, "%s (%s)", m, job->warning);
    else
        snprintf(job->msg, sizeof job->msg, "%s", m);
    longjmp(job->jump, 1);
}

/* Warnings are not printed; the first one is kept for the error message. */
static void on_png_warning(png_structp png, png_const_charp message) {
    png_job *job = png_get_error_ptr(png);
    if (!job->warning[0] && message) snprintf(job->warning, sizeof job->warning, "%s", message);
}

/* The libpng calls, which may longjmp back here. Returns 0, or -1 with job->msg set. */
static int write_guarded(png_job *job) {
    if (setjmp(job->jump)) return -1;

    job->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, job, on_png_error, on_png_warning);
    if (!job->png) {
        snprintf(job->msg, sizeof job->msg, "cannot create the libpng writer (out of memory?)");
        return -1;
    }
    job->info = png_create_info_struct(job->png);
    if (!job->info) {
        snprintf(job->msg, sizeof job->msg, "cannot create the libpng info (out of memory?)");
        return -1;
    }
    png_init_io(job->png, job->fp);

    job->in_header = 1;
    png_set_IHDR(job->png, job->info, (png_uint_32)job->width, (png_uint_32)job->height, 8,
                 job->channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(job->png, job->info);
    job->in_header = 0;

    size_t row_bytes = (size_t)job->width * (size_t)job->channels;
    for (int y = 0; y < job->height; y++)
        png_write_row(job->png, job->pixels + (size_t)y * row_bytes);
    png_write_end(job->png, NULL);
    return 0;
}


bzn_status bzn_image_write_png(const char *path, const uint8_t *pixels, int width, int height,
                               int channels, bzn_error *err) {
    if (!path || !*path) return bzn_fail(err, BZN_ERR_ARG, "write PNG: no path given");
    if (!pixels) return bzn_fail(err, BZN_ERR_ARG, "write PNG '%s': pixels are NULL", path);
    if (channels != 1 && channels != 3)
        return bzn_fail(err, BZN_ERR_ARG, "write PNG '%s': %d channels (expected 1 grey or 3 RGB)",
                        path, channels);
    if (width <= 0 || height <= 0)
        return bzn_fail(err, BZN_ERR_ARG, "write PNG '%s': invalid size %dx%d", path, width, height);

    bzn_writer *out;
    bzn_status st = bzn_writer_open(path, &out, err);
    if (st != BZN_OK) return st;
    png_job job;
    memset(&job, 0, sizeof job);
    job.pixels = pixels;
    job.width = width;
    job.height = height;
    job.channels = channels;
    job.fp = bzn_writer_stream(out);
    const int failed = write_guarded(&job) != 0;
    if (job.png) png_destroy_write_struct(&job.png, &job.info); /* info may be NULL */
    if (failed) {
        char ebuf[128];
        const int e = bzn_writer_error(out); /* libpng says only "Write Error": say why */
        st = bzn_fail(err, job.in_header ? BZN_ERR_ARG : BZN_ERR_IO, "cannot write PNG '%s': %s", path,
                      e ? bzn_errno_text(e, ebuf, sizeof ebuf) : job.msg);
    }
    const bzn_status closed = bzn_writer_close(out, failed, err);
    return failed ? st : closed;
}
