/* common.c - helpers shared by the subcommands (see cli.h). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cli_parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_size(const char *s, int *width, int *height) {
    return bzn_parse_size(s, width, height, NULL) == BZN_OK ? 0 : -1;
}

int cli_parse_backend(const char *cmd, const char *s, const char **out) {
    for (int i = 0; i < bzn_backend_count(); i++)
        if (!strcmp(s, bzn_backend_name(i))) {
            *out = bzn_backend_name(i);
            return 0;
        }
    cli_usage_error(cmd, "unknown backend '%s' (this build has: %s)", s, cli_backend_list());
    return EXIT_USAGE;
}

const char *cli_backend_list(void) {
    static char list[256];
    if (!list[0])
        for (int i = 0; i < bzn_backend_count(); i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", bzn_backend_name(i));
    return list;
}

void cli_backend_help(FILE *f, int width) {
    for (int i = 0; i < bzn_backend_count(); i++)
        fprintf(f, "  %*s  %-4s %s%s\n", width, "", bzn_backend_name(i), bzn_backend_description(i),
                i == 0 ? " (default)" : "");
}

/* "  OPT   text": the text at column 2 + width (at least one space after OPT), each further
 * line of it under the first */
static void help_item(FILE *f, int width, const char *opt, const char *text) {
    fprintf(f, "  %-*s ", width - 1, opt);
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        const int n = nl ? (int)(nl - p) : (int)strlen(p);
        fprintf(f, "%.*s\n", n, p);
        p += n + (nl != NULL);
        if (*p) fprintf(f, "  %*s", width, "");
    }
}

void cli_precision_help(FILE *f, int width) {
    help_item(f, width, "-p, --precision P",
              "fp32, tf32, fp16 or int8 (default: the weight file's: int8\n"
              "for an INT8 weight file from blazeneo quantize, else fp32);\n"
              "tf32 and fp16 run on the cuda backend; int8 with an FP32 model\n"
              "needs --calib;"
              " fp32 with an INT8 file runs its weights dequantized to\n"
              "float (for debugging)");
    help_item(f, width, "--calib CACHE", "INT8 activation scales from a calibration cache\n(blazeneo calibrate)");
    help_item(f, width, "--keep-fp32 NAMES", "INT8: comma-separated convolutions kept in FP32");
    help_item(f, width, "--device N", "-b cuda: which GPU (default 0)");
}

void cli_overlay_help(FILE *f, int width) {
    help_item(f, width, "--alpha A",
              "overlay: blend of the class colour inside the polyps, 0..1\n"
              "(default 0.45; 0: the frame as it is, outlines only)");
    help_item(f, width, "--outline N",
              "overlay: width in pixels of the line in the class colour along\n"
              "each polyp's border, with a black rim outside it (default 2,\n"
              "more on frames over 1250 pixels: min(width, height) / 500);\n"
              "0 or --no-outline: none");
    help_item(f, width, "--legend CORNER", "overlay: where the colour legend goes: tl (default), tr, bl,\nbr; --no-legend: none");
}

int cli_parse_precision(const char *s, bzn_precision *out) {
    if (!strcmp(s, "fp32")) *out = BZN_PRECISION_FP32;
    else if (!strcmp(s, "int8")) *out = BZN_PRECISION_INT8;
    else if (!strcmp(s, "fp16")) *out = BZN_PRECISION_FP16;
    else if (!strcmp(s, "tf32")) *out = BZN_PRECISION_TF32;
    else return -1;
    return 0;
}

int cli_precision_option(const char *cmd, int opt, const char *arg, cli_config *cfg) {
    switch (opt) {
    case 'p':
        if (cli_parse_precision(arg, &cfg->precision) == 0) return cfg->precision_set = 1, 0;
        return cli_usage_error(cmd, "unknown precision '%s' (fp32, tf32, fp16, int8)", arg);
    case CLI_OPT_CALIB: cfg->calib = arg; return 0;
    case CLI_OPT_KEEP_FP32: cfg->keep_fp32 = arg; return 0;
    case CLI_OPT_DEVICE: {
        char *end;
        const long d = strtol(arg, &end, 10);
        if (end == arg || *end || d < 0 || d > 255) return cli_usage_error(cmd, "invalid --device '%s' (0 to 255)", arg);
        cfg->device = (int)d;
        return 0;
    }
    default: return cli_bad_option(cmd, opt);
    }
}

void cli_overlay_init(cli_overlay *ov) {
    memset(ov, 0, sizeof *ov);
    ov->style = bzn_overlay_default_style();
}

int cli_overlay_option(const char *cmd, int opt, const char *arg, cli_overlay *ov) {
    static const struct {
        const char *name;
        bzn_legend_corner corner;
    } corners[] = {{"tl", BZN_LEGEND_TOP_LEFT}, {"tr", BZN_LEGEND_TOP_RIGHT}, {"bl", BZN_LEGEND_BOTTOM_LEFT},
                   {"br", BZN_LEGEND_BOTTOM_RIGHT}};
    char *end;
    switch (opt) {
    case CLI_OPT_ALPHA: {
        const float a = strtof(arg, &end);
        if (end == arg || *end || !(a >= 0.0f && a <= 1.0f))
            return cli_usage_error(cmd, "invalid alpha '%s' (a number from 0 to 1)", arg);
        ov->style.alpha = a;
        if (!ov->given) ov->given = "--alpha";
        return 0;
    }
    case CLI_OPT_OUTLINE:
        if (cli_parse_int(arg, 0, BZN_OVERLAY_MAX_OUTLINE, &ov->style.outline))
            return cli_usage_error(cmd, "invalid outline width '%s' (0 to %d pixels)", arg, BZN_OVERLAY_MAX_OUTLINE);
        if (!ov->given) ov->given = "--outline";
        return 0;
    case CLI_OPT_NO_OUTLINE:
        ov->style.outline = 0;
        if (!ov->given) ov->given = "--no-outline";
        return 0;
    case CLI_OPT_LEGEND:
        for (size_t i = 0; i < sizeof corners / sizeof *corners; i++)
            if (!strcmp(arg, corners[i].name)) {
                ov->style.legend = corners[i].corner;
                if (!ov->legend_given) ov->legend_given = "--legend";
                return 0;
            }
        return cli_usage_error(cmd, "invalid legend corner '%s' (tl, tr, bl, br)", arg);
    case CLI_OPT_NO_LEGEND:
        ov->style.legend = BZN_LEGEND_NONE;
        if (!ov->legend_given) ov->legend_given = "--no-legend";
        return 0;
    default: return -1;
    }
}

int cli_error(const char *cmd, const bzn_error *e) {
    fprintf(stderr, "blazeneo %s: %s\n", cmd, e->msg);
    return EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "blazeneo %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'blazeneo %s --help'.\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_bad_option(const char *cmd, int opt) {
    if (opt != '?') return cli_usage_error(cmd, "unknown option"); /* in the table, not handled */
    /* getopt has said what is wrong, as "blazeneo <cmd>: unrecognized option '--x'" (main
       names the command so), "invalid option -- 'x'" or "option requires an argument" */
    fprintf(stderr, "Try 'blazeneo %s --help'.\n", cmd);
    return EXIT_USAGE;
}

int cli_mkdir(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0) return S_ISDIR(st.st_mode) ? 0 : -1;
    return mkdir(path, 0755);
}

int cli_path_join(char *buf, size_t size, const char *dir, const char *fmt, ...) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--; /* "out//" is "out"; "/" stays */
    int used = snprintf(buf, size, "%.*s%s", (int)n, dir, n == 0 || dir[n - 1] == '/' ? "" : "/");
    if (used < 0 || (size_t)used >= size) return -1;
    va_list ap;
    va_start(ap, fmt);
    const int more = vsnprintf(buf + used, size - (size_t)used, fmt, ap);
    va_end(ap);
    return more < 0 || (size_t)more >= size - (size_t)used ? -1 : 0;
}

static int push(cli_list *l, const char *p) {
    char **np = realloc(l->paths, (size_t)(l->count + 1) * sizeof *np);
    if (!np) return -1;
    l->paths = np;
    if (!(l->paths[l->count] = strdup(p))) return -1;
    l->count++;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int cli_collect_images(const char *cmd, char **args, int n, cli_list *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(args[i], &st) != 0) {
            fprintf(stderr, "blazeneo %s: %s: %s\n", cmd, args[i], strerror(errno));
            cli_list_free(out);
            return -1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (push(out, args[i])) goto oom;
            continue;
        }
        DIR *d = opendir(args[i]);
        if (!d) {
            fprintf(stderr, "blazeneo %s: %s: %s\n", cmd, args[i], strerror(errno));
            cli_list_free(out);
            return -1;
        }
        int first = out->count;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char p[4096];
            cli_path_join(p, sizeof p, args[i], "%s", e->d_name);
            if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && push(out, p)) {
                closedir(d);
                goto oom;
            }
        }
        closedir(d);
        if (out->count == first) {
            fprintf(stderr, "blazeneo %s: %s: no images in this directory\n", cmd, args[i]);
            cli_list_free(out);
            return -1;
        }
        qsort(out->paths + first, (size_t)(out->count - first), sizeof *out->paths, cmp_str);
    }
    return 0;
oom:
    fprintf(stderr, "blazeneo %s: out of memory\n", cmd);
    cli_list_free(out);
    return -1;
}

void cli_list_free(cli_list *l) {
    for (int i = 0; i < l->count; i++) free(l->paths[i]);
    free(l->paths);
    memset(l, 0, sizeof *l);
}

void cli_stem(const char *path, char *buf, size_t size) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(buf, size, "%s", base);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = 0;
}

int cli_ctx_create(const char *cmd, const bzn_model *m, const cli_config *cfg, bzn_ctx **c) {
    bzn_error e;
    bzn_calib_table *t = NULL;
    *c = NULL;
    bzn_ctx_options o = bzn_ctx_default_options(m);
    if (cfg->width) o.width = cfg->width;
    if (cfg->height) o.height = cfg->height;
    o.backend = cfg->backend;
    o.device = cfg->device;
    o.threads = cfg->threads;
    o.batch = cfg->batch;
    o.run_aux = cfg->run_aux;
    o.keep_intermediates = cfg->keep_intermediates;
    o.precision = cli_precision_of(m, cfg);
    o.keep_fp32 = cfg->keep_fp32;
    if (cfg->calib && o.precision != BZN_PRECISION_INT8) {
        fprintf(stderr, "blazeneo %s: --calib is for -p int8\n", cmd);
        return EXIT_FAIL;
    }
    if (cfg->calib) {
        if (bzn_calib_cache_read(cfg->calib, &t, &e) != BZN_OK) return cli_error(cmd, &e);
        o.scales = t->scales;
        o.n_scales = t->count;
    }
    bzn_status s = bzn_ctx_create(m, &o, c, &e);
    /* the cache must name exactly this network's tensors: nothing guessed, nothing ignored */
    if (s == BZN_OK && t) s = bzn_calib_cache_check(t, *c, &e);
    bzn_calib_table_free(t);
    if (s != BZN_OK) {
        bzn_ctx_free(*c);
        *c = NULL;
        if (cfg->calib) {
            char msg[sizeof e.msg];
            snprintf(msg, sizeof msg, "%s", e.msg);
            snprintf(e.msg, sizeof e.msg, "%s: %.400s", cfg->calib, msg);
        }
        if (o.precision == BZN_PRECISION_INT8 && o.run_aux) {
            const size_t len = strlen(e.msg);
            snprintf(e.msg + len, sizeof e.msg - len, " (INT8 with the auxiliary head needs its scales too: "
                                                      "calibrate --aux, then quantize; or -p fp32)");
        }
        return cli_error(cmd, &e);
    }
    cli_precision_note(cmd, m, cfg);
    return 0;
}

bzn_precision cli_precision_of(const bzn_model *m, const cli_config *cfg) {
    if (cfg->precision_set) return cfg->precision;
    if (cfg->calib) return BZN_PRECISION_INT8;
    bzn_model_info mi;
    bzn_model_get_info(m, &mi);
    return mi.precision;
}

void cli_precision_note(const char *cmd, const bzn_model *m, const cli_config *cfg) {
    if (cfg->quiet) return;
    bzn_model_info mi;
    bzn_model_get_info(m, &mi);
    const bzn_precision p = cli_precision_of(m, cfg);
    const char *name = bzn_precision_name(p);
    const int dequantized = p == BZN_PRECISION_FP32 && mi.precision == BZN_PRECISION_INT8;
    if (cfg->precision_why)
        fprintf(stderr, "blazeneo %s: precision %s (%s%s)\n", cmd, name, cfg->precision_why,
                dequantized ? "; this INT8 weight file's weights dequantized to float" : "");
    else if (dequantized)
        fprintf(stderr, "blazeneo %s: precision fp32 (-p fp32: this INT8 weight file's weights dequantized to float, "
                        "a debugging mode; without -p it runs int8)\n", cmd);
    else if (p == BZN_PRECISION_INT8 && cfg->calib)
        fprintf(stderr, "blazeneo %s: precision int8 (%s, activation scales from %s)\n", cmd,
                cfg->precision_set ? "-p int8" : "--calib", cfg->calib);
    else if (cfg->precision_set)
        fprintf(stderr, "blazeneo %s: precision %s (-p %s)\n", cmd, name, name);
    else
        fprintf(stderr, "blazeneo %s: precision %s (from the weight file)\n", cmd, name);
}

int cli_open(const char *cmd, const char *model_path, const cli_config *cfg, bzn_model **m, bzn_ctx **c) {
    bzn_error e;
    *c = NULL;
    if (bzn_model_open(model_path, m, &e) != BZN_OK) return cli_error(cmd, &e);
    if (cli_ctx_create(cmd, *m, cfg, c)) {
        bzn_model_free(*m);
        *m = NULL;
        return EXIT_FAIL;
    }
    return 0;
}

double cli_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

bzn_status cli_fail(bzn_error *e, bzn_status status, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        e->status = status;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

void cli_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

void cli_markup_text(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

FILE *cli_summary_stream(const char *output) { return output && !strcmp(output, "-") ? stderr : stdout; }

int cli_is_regular_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Killed by a signal: no temporary file of an unfinished output is left behind; then die of
 * the signal, so the parent sees how the tool ended. */
static void on_fatal_signal(int sig) {
    bzn_writer_remove_temporaries();
    signal(sig, SIG_DFL);
    raise(sig);
}

void cli_catch_fatal_signals(void) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction old;
        /* a signal ignored by whoever started us (nohup, `cmd &` in a script) stays ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN) sigaction(sigs[i], &sa, NULL);
    }
}
