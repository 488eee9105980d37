/* cli.h - the blazeneo command-line tool: one file per subcommand, shared helpers here. */
#ifndef BZN_CLI_H
#define BZN_CLI_H

#include <stdio.h>

#include "blazeneo.h"

/* exit statuses */
#define EXIT_OK 0
#define EXIT_FAIL 1  /* bad input or runtime failure */
#define EXIT_USAGE 2 /* wrong command line */

int cmd_calibrate(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_segment(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_sensitivity(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_stream(int argc, char **argv);

/* "cpu" (OpenBLAS) or "ref" (plain C reference); 0 on success */
/* -b NAME: one of the library's backends (*out: the library's name); else a usage error
 * naming those this build has, and EXIT_USAGE */
int cli_parse_backend(const char *cmd, const char *s, const char **out);
/* "cpu, ref": the backends of this build */
const char *cli_backend_list(void);
/* one help line per backend (name, description), indented by width + 2 */
void cli_backend_help(FILE *f, int width);
/* "fp32", "tf32", "fp16" or "int8"; 0 on success */
int cli_parse_precision(const char *s, bzn_precision *out);

/* How a command wants its context: every running command fills one from its options. */
typedef struct {
    int width, height;         /* 0: the model's default */
    const char *backend; /* NULL: the library's default */
    bzn_precision precision;   /* when precision_set (-p, or a command that needs one) */
    int precision_set;         /* 0: the weight file's precision (bzn_model_info.precision: INT8
                                  for an INT8 weight file), or INT8 when --calib is given */
    const char *precision_why; /* a command's own reason for its precision, for the note */
    int quiet;                 /* no "precision ..." note on stderr */
    const char *calib;         /* INT8 with an FP32/FP16 model: a calibration cache */
    const char *keep_fp32;     /* INT8: comma-separated layers kept in FP32 */
    int threads, run_aux, keep_intermediates;
    int batch;  /* frames per run (0: one) */
    int device; /* --device: which GPU (backends with several devices) */
} cli_config;

/* The precision options every running command takes: -p, --calib, --keep-fp32, and the
 * backend's --device. Put
 * CLI_PRECISION_OPTIONS in the getopt_long table ("p:" in the short options) and pass every
 * option the command does not handle itself to cli_precision_option: 0 handled, EXIT_USAGE
 * for a bad value or an unknown option (the message is printed). */
#define CLI_OPT_CALIB 0x1001
#define CLI_OPT_KEEP_FP32 0x1002
#define CLI_OPT_DEVICE 0x1003
#define CLI_PRECISION_OPTIONS                                                                      \
    {"precision", required_argument, 0, 'p'}, {"calib", required_argument, 0, CLI_OPT_CALIB},      \
        {"keep-fp32", required_argument, 0, CLI_OPT_KEEP_FP32}, {"device", required_argument, 0, CLI_OPT_DEVICE}
/* their help lines, the descriptions at column 2 + width (as cli_backend_help) */
void cli_precision_help(FILE *f, int width);
int cli_precision_option(const char *cmd, int opt, const char *arg, cli_config *cfg);

/* The overlay options (segment --overlay, stream --out overlay): --alpha, --outline,
 * --no-outline, --legend, --no-legend. Put CLI_OVERLAY_OPTIONS in the getopt_long table and
 * pass options to cli_overlay_option before cli_precision_option: 0 handled, -1 not an overlay
 * option, EXIT_USAGE for a bad value (the message is printed). `style` starts as
 * bzn_overlay_default_style() (cli_overlay_init); `given` names the first style option given
 * (NULL: none), `legend_given` the first legend option, for "is for --overlay" errors. */
#define CLI_OPT_ALPHA 0x1010
#define CLI_OPT_OUTLINE 0x1011
#define CLI_OPT_NO_OUTLINE 0x1012
#define CLI_OPT_LEGEND 0x1013
#define CLI_OPT_NO_LEGEND 0x1014
#define CLI_OVERLAY_OPTIONS                                                                          \
    {"alpha", required_argument, 0, CLI_OPT_ALPHA}, {"outline", required_argument, 0, CLI_OPT_OUTLINE}, \
        {"no-outline", no_argument, 0, CLI_OPT_NO_OUTLINE}, {"legend", required_argument, 0, CLI_OPT_LEGEND}, \
        {"no-legend", no_argument, 0, CLI_OPT_NO_LEGEND}
void cli_overlay_help(FILE *f, int width);
typedef struct {
    bzn_overlay_style style;
    const char *given;        /* the first of --alpha, --outline, --no-outline given */
    const char *legend_given; /* the first of --legend, --no-legend given */
} cli_overlay;
void cli_overlay_init(cli_overlay *ov);
int cli_overlay_option(const char *cmd, int opt, const char *arg, cli_overlay *ov);

/* Open a model, or create a context of one, as cfg says (reading and checking the calibration
 * cache for INT8); errors are printed as "blazeneo <cmd>: ..."; 0 on success. Unless cfg->quiet,
 * stderr gets which precision runs and why: "blazeneo <cmd>: precision int8 (from the weight
 * file)" (cli_precision_note). */
int cli_open(const char *cmd, const char *model_path, const cli_config *cfg, bzn_model **m, bzn_ctx **c);
int cli_ctx_create(const char *cmd, const bzn_model *m, const cli_config *cfg, bzn_ctx **c);
/* The precision a context made as cfg says runs: -p's, else INT8 with --calib, else the file's. */
bzn_precision cli_precision_of(const bzn_model *m, const cli_config *cfg);
void cli_precision_note(const char *cmd, const bzn_model *m, const cli_config *cfg);

/* a whole number in [lo, hi]; 0 on success */
int cli_parse_int(const char *s, int lo, int hi, int *out);

/* "352" or "512x384" (width x height); 0 on success */
int cli_parse_size(const char *s, int *width, int *height);
/* print "blazeneo <cmd>: <msg>" to stderr; returns EXIT_FAIL */
int cli_error(const char *cmd, const bzn_error *e);
/* usage error: message + hint; returns EXIT_USAGE */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An option getopt_long returned that the command does not handle: '?' (getopt has printed
 * what is wrong) gets the --help hint; returns EXIT_USAGE. */
int cli_bad_option(const char *cmd, int opt);
/* create a directory if missing (one level); 0 on success */
int cli_mkdir(const char *path);

/* The images named on the command line: files as given, directories expanded to their
 * regular files (sorted, hidden files skipped). */
typedef struct {
    char **paths;
    int count;
} cli_list;
int cli_collect_images(const char *cmd, char **args, int n, cli_list *out);
void cli_list_free(cli_list *l);
/* dir + "/" + the printf-formatted name into buf, with one slash between however many dir
 * ends with ("out/" and "out" both give "out/x.png"; "/" gives "/x.png"; "" gives the name
 * alone); 0, or -1 when it did not fit (buf then holds a cut path). */
int cli_path_join(char *buf, size_t size, const char *dir, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* file name without directory and extension, into buf */
void cli_stem(const char *path, char *buf, size_t size);
double cli_now_ms(void);

/* Fill e (when not NULL) and return status: the CLI's counterpart of the library's errors. */
bzn_status cli_fail(bzn_error *e, bzn_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* SIGINT, SIGTERM, SIGHUP, SIGQUIT remove the temporary files of unfinished outputs
 * (bzn_writer_remove_temporaries), then end the process as the signal would have. */
void cli_catch_fatal_signals(void);
/* Where a command prints its summary: stdout, unless its output file is "-" (stdout). */
FILE *cli_summary_stream(const char *output);
/* 1 when `path` names a regular file (after symbolic links): an output that can be read back */
int cli_is_regular_file(const char *path);

/* A JSON string literal: quotes, backslashes and control characters escaped. */
void cli_json_string(FILE *f, const char *s);
/* Text for HTML/SVG content and attribute values: & < > " ' as entities. */
void cli_markup_text(FILE *f, const char *s);

#endif
