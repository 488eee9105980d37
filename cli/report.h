/*
 * report.h - the results of `blazeneo eval` and everything that is made from them: the
 * undefined-aware ground truth and counts, the text table, JSON, the per-image CSV and
 * the HTML report with its thumbnail gallery.
 *
 * cmd_eval.c decides *what* is measured (pairing images with masks, running every
 * configuration); this file only turns masks into counts and counts into outputs. It uses
 * nothing but the public API and the C library, so tests/test_eval.c can compile it in
 * and check the counting rules directly.
 */
#ifndef BZN_CLI_REPORT_H
#define BZN_CLI_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "blazeneo.h"

/* ---- ground truth with an "undefined" label ------------------------------------------ */

typedef enum {
    EVAL_UNDEFINED_NONE = 0,   /* the spec's three classes only (yellow is background) */
    EVAL_UNDEFINED_YELLOW = 1, /* R >= 128 and G >= 128 is undefined (bzn_mask_to_classes_undefined) */
} eval_undefined_rule;


/* ---- results --------------------------------------------------------------------------- */

/* One configuration: a (backend, precision) pair, evaluated on every image. */
typedef struct {
    char label[48];        /* "cpu/fp32" */
    const char *backend;   /* "cpu", "ref" */
    const char *precision; /* "fp32" */
    bzn_confusion total;   /* counts summed over every pixel of every image */
    double ms_total;       /* inference time over all images: bzn_run_rgb + bzn_class_map */
} eval_config;

/* One image/mask pair. */
typedef struct {
    char *name;            /* image file name (no directory) */
    char *mask;            /* mask file name (no directory) */
    int width, height;     /* of the image and its mask */
    uint64_t undefined_px; /* ground-truth pixels labelled undefined */
    bzn_confusion *conf;   /* this image's counts, one per configuration */
} eval_image;

typedef struct {
    const char *model;     /* the weight file as given on the command line */
    const char *masks_dir; /* for the report's header */
    int width, height;     /* network input size */
    eval_undefined_rule undefined;
    int nconfigs;
    eval_config *configs;
    int nimages;           /* images evaluated (all of them, or the command failed) */
    eval_image *images;
    uint64_t undefined_px; /* over all images */
} eval_results;

const char *eval_undefined_name(eval_undefined_rule rule); /* "yellow", "none" */

/* The paper's Table 6: one row per configuration. */
void eval_print_table(FILE *f, const eval_results *r);
/* A JSON array, one object per configuration (see `blazeneo eval --help`). */
void eval_print_json(FILE *f, const eval_results *r);
/* Per-image scores as CSV, written to a temporary file and renamed onto `path`. */
bzn_status eval_write_csv(const char *path, const eval_results *r, bzn_error *e);

/* ---- HTML report ------------------------------------------------------------------------ */

/* The report is built while eval runs: report_add_image writes the image's thumbnails
 * into DIR/img/ (the full-size frames are not kept), report_finish writes DIR/index.html
 * last, through a temporary file, once every score is known. */
typedef struct eval_report eval_report;

/* Creates DIR and DIR/img (one level each, like mkdir). `r` must outlive the report. */
bzn_status report_open(const char *dir, const eval_results *r, eval_report **out, bzn_error *e);
/* Thumbnails of image `index` (of r->images): the frame, its ground truth, and per
 * configuration the prediction and the overlay. pred[k] is configuration k's class map at
 * the frame's size. */
bzn_status report_add_image(eval_report *rp, int index, const bzn_image *frame, const uint8_t *truth,
                            uint8_t *const *pred, bzn_error *e);
/* DIR/index.html: the metrics table and the gallery, worst Dice first. */
bzn_status report_finish(eval_report *rp, bzn_error *e);
void report_free(eval_report *rp);

/* Thumbnail width in the report (frames narrower than this keep their size). */
#define REPORT_THUMB_WIDTH 320

#endif
