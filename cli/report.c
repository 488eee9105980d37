/*
 * report.c - the outputs of `blazeneo eval`: text table, JSON, per-image CSV and the HTML
 * report (see report.h).
 *
 * Every file is written the same safe way: into a temporary file next to the target,
 * then renamed onto it, so a reader never sees a half-written CSV or index.html (PNG
 * thumbnails get the same treatment from bzn_image_write_png).
 */
#include "cli.h"
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const metric_name[3] = {"seg", "neo", "non"};


const char *eval_undefined_name(eval_undefined_rule rule) {
    return rule == EVAL_UNDEFINED_YELLOW ? "yellow" : "none";
}

/* Nothing to find and nothing found: the library scores that 1; the report shows "–". */
static int score_defined(const bzn_confusion *c, int m) { return c->tp[m] + c->fp[m] + c->fn[m] > 0; }

static double ms_per_image(const eval_results *r, int k) {
    return r->nimages ? r->configs[k].ms_total / r->nimages : 0.0;
}

/* ---- text table, JSON, CSV ------------------------------------------------------------- */

void eval_print_table(FILE *f, const eval_results *r) {
    int lw = (int)strlen("configuration");
    for (int k = 0; k < r->nconfigs; k++)
        if ((int)strlen(r->configs[k].label) > lw) lw = (int)strlen(r->configs[k].label);
    fprintf(f, "model %s, input %dx%d, %d image%s", r->model, r->width, r->height, r->nimages,
            r->nimages == 1 ? "" : "s");
    if (r->undefined == EVAL_UNDEFINED_YELLOW)
        fprintf(f, ", %" PRIu64 " undefined (yellow) pixels left out of neo/non", r->undefined_px);
    fprintf(f, "\n\n%-*s  Dice seg  Dice neo  Dice non   IoU seg   IoU neo   IoU non  images  ms/image\n", lw,
            "configuration");
    for (int k = 0; k < r->nconfigs; k++) {
        const bzn_confusion *c = &r->configs[k].total;
        fprintf(f, "%-*s", lw, r->configs[k].label);
        for (int m = 0; m < 3; m++) fprintf(f, "  %8.4f", bzn_dice(c, m));
        for (int m = 0; m < 3; m++) fprintf(f, "  %8.4f", bzn_iou(c, m));
        fprintf(f, "  %6d  %8.1f\n", r->nimages, ms_per_image(r, k));
    }
}


void eval_print_json(FILE *f, const eval_results *r) {
    fprintf(f, "[");
    for (int k = 0; k < r->nconfigs; k++) {
        const eval_config *cf = &r->configs[k];
        const bzn_confusion *c = &cf->total;
        fprintf(f, "%s\n  {\"model\": ", k ? "," : "");
        cli_json_string(f, r->model);
        fprintf(f, ", \"backend\": ");
        cli_json_string(f, cf->backend);
        fprintf(f, ", \"precision\": ");
        cli_json_string(f, cf->precision);
        fprintf(f, ", \"size\": \"%dx%d\", \"images\": %d,\n   ", r->width, r->height, r->nimages);
        for (int m = 0; m < 3; m++) fprintf(f, "\"dice_%s\": %.6f, ", metric_name[m], bzn_dice(c, m));
        for (int m = 0; m < 3; m++) fprintf(f, "\"iou_%s\": %.6f, ", metric_name[m], bzn_iou(c, m));
        fprintf(f, "\"ms_per_image\": %.2f,\n   \"undefined\": \"%s\", \"undefined_pixels\": %" PRIu64 ",\n   \"counts\": {",
                ms_per_image(r, k), eval_undefined_name(r->undefined), r->undefined_px);
        for (int m = 0; m < 3; m++)
            fprintf(f, "%s\"%s\": {\"tp\": %" PRIu64 ", \"fp\": %" PRIu64 ", \"fn\": %" PRIu64 "}", m ? ", " : "",
                    metric_name[m], c->tp[m], c->fp[m], c->fn[m]);
        fprintf(f, "}}");
    }
    fprintf(f, "\n]\n");
}

/* A CSV field, quoted (RFC 4180) when it holds a comma, quote or line break. */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

bzn_status eval_write_csv(const char *path, const eval_results *r, bzn_error *e) {
    bzn_writer *w;
    bzn_status s = bzn_writer_open(path, &w, e);
    if (s != BZN_OK) return s;
    FILE *f = bzn_writer_stream(w);
    fprintf(f, "image,mask,config,backend,precision,width,height,dice_seg,dice_neo,dice_non,iou_seg,iou_neo,iou_non,"
               "gt_polyp_px,pred_polyp_px,gt_neo_px,pred_neo_px,gt_non_px,pred_non_px,undefined_px\n");
    for (int i = 0; i < r->nimages; i++) {
        const eval_image *im = &r->images[i];
        for (int k = 0; k < r->nconfigs; k++) {
            const bzn_confusion *c = &im->conf[k];
            csv_field(f, im->name);
            fputc(',', f);
            csv_field(f, im->mask);
            fprintf(f, ",%s,%s,%s,%d,%d", r->configs[k].label, r->configs[k].backend, r->configs[k].precision,
                    im->width, im->height);
            for (int m = 0; m < 3; m++) fprintf(f, ",%.6f", bzn_dice(c, m));
            for (int m = 0; m < 3; m++) fprintf(f, ",%.6f", bzn_iou(c, m));
            /* ground truth = TP + FN, prediction = TP + FP */
            for (int m = 0; m < 3; m++) fprintf(f, ",%" PRIu64 ",%" PRIu64, c->tp[m] + c->fn[m], c->tp[m] + c->fp[m]);
            fprintf(f, ",%" PRIu64 "\n", im->undefined_px);
        }
    }
    return bzn_writer_close(w, 0, e);
}

/* ---- HTML report ------------------------------------------------------------------------ */

struct eval_report {
    char *dir;
    const eval_results *r;
    uint8_t *full;    /* a colour picture at the frame's size (mask or overlay) */
    size_t full_size;
    uint8_t *thumb;   /* its thumbnail */
    size_t thumb_size;
    char *done;       /* per image: thumbnails written */
};

/* Thumbnail size: REPORT_THUMB_WIDTH wide (never enlarged), the frame's aspect ratio. */
static void thumb_dims(int w, int h, int *tw, int *th) {
    *tw = w < REPORT_THUMB_WIDTH ? w : REPORT_THUMB_WIDTH;
    *th = (int)(((int64_t)h * *tw + w / 2) / w);
    if (*th < 1) *th = 1;
}

/* File names under DIR/img/ are built from the image's index, never from its file name,
 * so nothing in them needs escaping: 0007-frame.png, 0007-pred-cpu-fp32.png, ... */
static void thumb_name(char *buf, size_t size, int index, const char *kind, const eval_config *cf) {
    if (cf) snprintf(buf, size, "img/%04d-%s-%s-%s.png", index + 1, kind, cf->backend, cf->precision);
    else snprintf(buf, size, "img/%04d-%s.png", index + 1, kind);
}

static int grow(uint8_t **buf, size_t *size, size_t need) {
    if (*size >= need) return 0;
    uint8_t *p = realloc(*buf, need);
    if (!p) return -1;
    *buf = p;
    *size = need;
    return 0;
}

bzn_status report_open(const char *dir, const eval_results *r, eval_report **out, bzn_error *e) {
    *out = NULL;
    char img[4096];
    if (cli_path_join(img, sizeof img, dir, "img")) return cli_fail(e, BZN_ERR_ARG, "%s: path too long", dir);
    struct stat st;
    for (int level = 0; level < 2; level++) {
        const char *p = level ? img : dir;
        if (stat(p, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) return cli_fail(e, BZN_ERR_IO, "%s: exists and is not a directory", p);
        } else if (mkdir(p, 0755) != 0) {
            return cli_fail(e, BZN_ERR_IO, "cannot create report folder '%s': %s", p, strerror(errno));
        }
    }
    eval_report *rp = calloc(1, sizeof *rp);
    if (rp) {
        rp->r = r;
        rp->dir = strdup(dir);
        rp->done = calloc((size_t)r->nimages + 1, 1);
    }
    if (!rp || !rp->dir || !rp->done) {
        report_free(rp);
        return cli_fail(e, BZN_ERR_NOMEM, "report: out of memory");
    }
    *out = rp;
    return BZN_OK;
}

/* Downscale a frame-sized RGB picture and write it as DIR/img/<name>. */
static bzn_status write_thumb(eval_report *rp, const uint8_t *rgb, int w, int h, const char *name, bzn_error *e) {
    int tw, th;
    thumb_dims(w, h, &tw, &th);
    if (grow(&rp->thumb, &rp->thumb_size, (size_t)tw * th * 3)) return cli_fail(e, BZN_ERR_NOMEM, "report: out of memory");
    bzn_status s = bzn_resize_bilinear(rgb, w, h, w * 3, 3, rp->thumb, tw, th, e);
    if (s != BZN_OK) return s;
    char path[8192];
    cli_path_join(path, sizeof path, rp->dir, "%s", name);
    return bzn_image_write_png(path, rp->thumb, tw, th, 3, e);
}

bzn_status report_add_image(eval_report *rp, int index, const bzn_image *frame, const uint8_t *truth,
                            uint8_t *const *pred, bzn_error *e) {
    const eval_results *r = rp->r;
    if (index < 0 || index >= r->nimages) return cli_fail(e, BZN_ERR_ARG, "report: image index %d out of range", index);
    const int w = frame->width, h = frame->height;
    const size_t n = (size_t)w * h;
    if (grow(&rp->full, &rp->full_size, 3 * n)) return cli_fail(e, BZN_ERR_NOMEM, "report: out of memory");
    /* segment --overlay's blend and outline, the outline as wide as two thumbnail pixels so that
     * it survives the downscale (at least the default's); no legend: the page has its colour key */
    int tw, th;
    thumb_dims(w, h, &tw, &th);
    bzn_overlay_style style = bzn_overlay_default_style();
    style.outline = (2 * w + tw - 1) / tw;
    if (style.outline < 2) style.outline = 2;
    if (style.outline > BZN_OVERLAY_MAX_OUTLINE) style.outline = BZN_OVERLAY_MAX_OUTLINE;
    style.legend = BZN_LEGEND_NONE;
    char name[256];
    thumb_name(name, sizeof name, index, "frame", NULL);
    bzn_status s = write_thumb(rp, frame->pixels, w, h, name, e);
    if (s == BZN_OK) {
        bzn_colorize(truth, n, rp->full);
        thumb_name(name, sizeof name, index, "truth", NULL);
        s = write_thumb(rp, rp->full, w, h, name, e);
    }
    for (int k = 0; s == BZN_OK && k < r->nconfigs; k++) {
        bzn_colorize(pred[k], n, rp->full);
        thumb_name(name, sizeof name, index, "pred", &r->configs[k]);
        s = write_thumb(rp, rp->full, w, h, name, e);
        if (s != BZN_OK) break;
        s = bzn_overlay_draw(frame->pixels, pred[k], w, h, &style, rp->full, e);
        if (s != BZN_OK) break;
        thumb_name(name, sizeof name, index, "overlay", &r->configs[k]);
        s = write_thumb(rp, rp->full, w, h, name, e);
    }
    if (s == BZN_OK) rp->done[index] = 1;
    return s;
}


/* Gallery order: per-image Dice seg of the first configuration, lowest first; then Dice
 * neo, Dice non, and the file-name order. An image with nothing to find and nothing found
 * scores 1 and so comes last. */
typedef struct {
    double key[3];
    int index;
} gallery_entry;

static int cmp_gallery(const void *pa, const void *pb) {
    const gallery_entry *a = pa, *b = pb;
    for (int m = 0; m < 3; m++)
        if (a->key[m] != b->key[m]) return a->key[m] < b->key[m] ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

static const char *page_style =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#222;background:#fff}\n"
    "h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.6em 0 .5em}\n"
    "p.meta{color:#555;margin:.2em 0}code{background:#f3f3f3;padding:0 3px;border-radius:3px}\n"
    "table{border-collapse:collapse}\n"
    "table.metrics th,table.metrics td{border:1px solid #ccc;padding:4px 10px;text-align:right}\n"
    "table.metrics th{background:#f0f0f0}table.metrics td:first-child{text-align:left;font-weight:600}\n"
    "table.gallery{table-layout:fixed;width:100%}\n"
    "table.gallery th{position:sticky;top:0;background:#fff;padding:4px;border-bottom:1px solid #ccc;font-weight:600}\n"
    "table.gallery td{padding:2px;vertical-align:top}\n"
    "table.gallery td.cap{padding:14px 2px 2px;font-size:.9em}\n"
    "table.gallery img{display:block;max-width:100%;height:auto}\n"
    ".bad{color:#b00020;font-weight:600}.name{font-family:monospace}\n"
    ".key{display:inline-block;width:.9em;height:.9em;vertical-align:-.1em;border:1px solid #888;margin:0 3px 0 10px}\n";

/* Sets data-images-loaded="N/M" on <body> once the page has loaded: M images, N of them
 * decoded. The test suite reads it back from a headless browser. */
static const char *page_script =
    "window.addEventListener('load', function () {\n"
    "  var all = document.images, ok = 0;\n"
    "  for (var i = 0; i < all.length; i++) if (all[i].complete && all[i].naturalWidth > 0) ok++;\n"
    "  document.body.setAttribute('data-images-loaded', ok + '/' + all.length);\n"
    "  if (ok < all.length) document.getElementById('status').textContent =\n"
    "    (all.length - ok) + ' of ' + all.length + ' images did not load';\n"
    "});\n";

static void html_score(FILE *f, const bzn_confusion *c, int m) {
    if (score_defined(c, m)) fprintf(f, "%.3f", bzn_dice(c, m));
    else fputs("&ndash;", f);
}

static void html_img(FILE *f, const char *src, int w, int h, const char *alt) {
    fprintf(f, "<td><img src=\"%s\" width=\"%d\" height=\"%d\" alt=\"%s\"></td>", src, w, h, alt);
}

bzn_status report_finish(eval_report *rp, bzn_error *e) {
    const eval_results *r = rp->r;
    for (int i = 0; i < r->nimages; i++)
        if (!rp->done[i]) return cli_fail(e, BZN_ERR_ARG, "report: no thumbnails for %s", r->images[i].name);
    gallery_entry *order = malloc(((size_t)r->nimages + 1) * sizeof *order);
    if (!order) return cli_fail(e, BZN_ERR_NOMEM, "report: out of memory");
    for (int i = 0; i < r->nimages; i++) {
        for (int m = 0; m < 3; m++) order[i].key[m] = r->nconfigs ? bzn_dice(&r->images[i].conf[0], m) : 0;
        order[i].index = i;
    }
    qsort(order, (size_t)r->nimages, sizeof *order, cmp_gallery);

    char path[4096];
    cli_path_join(path, sizeof path, rp->dir, "index.html");
    bzn_writer *w;
    bzn_status s = bzn_writer_open(path, &w, e);
    if (s != BZN_OK) {
        free(order);
        return s;
    }
    FILE *f = bzn_writer_stream(w);
    char when[64] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);

    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>BlazeNeo eval: ");
    cli_markup_text(f, r->model);
    fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body data-images-loaded=\"pending\">\n", page_style);
    fprintf(f, "<h1>BlazeNeo evaluation</h1>\n<p class=\"meta\">Model <code>");
    cli_markup_text(f, r->model);
    fprintf(f, "</code>, network input %dx%d, %d image%s, masks from <code>", r->width, r->height, r->nimages,
            r->nimages == 1 ? "" : "s");
    cli_markup_text(f, r->masks_dir ? r->masks_dir : "");
    fprintf(f, "</code>. Generated %s by blazeneo %s.</p>\n", when, BZN_VERSION_STRING);
    if (r->undefined == EVAL_UNDEFINED_YELLOW)
        fprintf(f, "<p class=\"meta\">Undefined (yellow) ground-truth pixels: %" PRIu64
                   " &mdash; counted as polyp for seg, left out of neo and non.</p>\n",
                r->undefined_px);
    else
        fprintf(f, "<p class=\"meta\">Undefined labels: not used (yellow counts as background).</p>\n");
    fprintf(f, "<p id=\"status\" class=\"bad\"></p>\n");

    /* the metrics table: the paper's Table 6 */
    fprintf(f, "<h2>Accuracy, micro-averaged over every pixel of the set</h2>\n<table class=\"metrics\">\n"
               "<tr><th>configuration</th><th>Dice seg</th><th>Dice neo</th><th>Dice non</th>"
               "<th>IoU seg</th><th>IoU neo</th><th>IoU non</th><th>images</th><th>ms/image</th></tr>\n");
    for (int k = 0; k < r->nconfigs; k++) {
        const bzn_confusion *c = &r->configs[k].total;
        fprintf(f, "<tr><td>");
        cli_markup_text(f, r->configs[k].label);
        fprintf(f, "</td>");
        for (int m = 0; m < 3; m++) fprintf(f, "<td>%.4f</td>", bzn_dice(c, m));
        for (int m = 0; m < 3; m++) fprintf(f, "<td>%.4f</td>", bzn_iou(c, m));
        fprintf(f, "<td>%d</td><td>%.1f</td></tr>\n", r->nimages, ms_per_image(r, k));
    }
    fprintf(f, "</table>\n");

    /* the gallery: the paper's Fig. 10, worst first */
    fprintf(f, "<h2>Every image, worst Dice first</h2>\n<p class=\"meta\">Sorted by the image's own polyp Dice");
    if (r->nconfigs > 1) {
        fprintf(f, " under ");
        cli_markup_text(f, r->configs[0].label);
    }
    fprintf(f, ". Colours: <span class=\"key\" style=\"background:#f00\"></span>neoplastic"
               "<span class=\"key\" style=\"background:#0f0\"></span>non-neoplastic");
    if (r->undefined == EVAL_UNDEFINED_YELLOW)
        fprintf(f, "<span class=\"key\" style=\"background:#ff0\"></span>undefined");
    /* equal columns, never wider than the thumbnails themselves */
    fprintf(f, ". A dash (&ndash;) means nothing to find and nothing found.</p>\n"
               "<table class=\"gallery\" style=\"max-width:%dpx\">\n<tr><th>frame</th><th>ground truth</th>",
            (2 + 2 * r->nconfigs) * (REPORT_THUMB_WIDTH + 4));
    for (int k = 0; k < r->nconfigs; k++) {
        fprintf(f, "<th>prediction ");
        cli_markup_text(f, r->configs[k].label);
        fprintf(f, "</th><th>overlay ");
        cli_markup_text(f, r->configs[k].label);
        fprintf(f, "</th>");
    }
    fprintf(f, "</tr>\n");
    for (int j = 0; j < r->nimages; j++) {
        const int i = order[j].index;
        const eval_image *im = &r->images[i];
        int tw, th;
        thumb_dims(im->width, im->height, &tw, &th);
        fprintf(f, "<tr><td class=\"cap\" colspan=\"%d\">%d. <span class=\"name\">", 2 + 2 * r->nconfigs, j + 1);
        cli_markup_text(f, im->name);
        fprintf(f, "</span> (%dx%d)", im->width, im->height);
        for (int k = 0; k < r->nconfigs; k++) {
            const bzn_confusion *c = &im->conf[k];
            fprintf(f, " &nbsp; ");
            if (r->nconfigs > 1) {
                cli_markup_text(f, r->configs[k].label);
                fprintf(f, ": ");
            }
            fprintf(f, "Dice seg <b%s>", score_defined(c, 0) && bzn_dice(c, 0) < 0.5 ? " class=\"bad\"" : "");
            html_score(f, c, 0);
            fprintf(f, "</b> neo <b>");
            html_score(f, c, 1);
            fprintf(f, "</b> non <b>");
            html_score(f, c, 2);
            fprintf(f, "</b>");
        }
        if (im->undefined_px) fprintf(f, " &nbsp; undefined pixels: %" PRIu64, im->undefined_px);
        fprintf(f, "</td></tr>\n<tr>");
        char src[256];
        thumb_name(src, sizeof src, i, "frame", NULL);
        html_img(f, src, tw, th, "frame");
        thumb_name(src, sizeof src, i, "truth", NULL);
        html_img(f, src, tw, th, "ground truth");
        for (int k = 0; k < r->nconfigs; k++) {
            thumb_name(src, sizeof src, i, "pred", &r->configs[k]);
            html_img(f, src, tw, th, "prediction");
            thumb_name(src, sizeof src, i, "overlay", &r->configs[k]);
            html_img(f, src, tw, th, "overlay");
        }
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n<script>\n%s</script>\n</body>\n</html>\n", page_script);
    free(order);
    return bzn_writer_close(w, 0, e);
}

void report_free(eval_report *rp) {
    if (!rp) return;
    free(rp->dir);
    free(rp->full);
    free(rp->thumb);
    free(rp->done);
    free(rp);
}
