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
/* "fp32" or "int8"; 0 on success */
int cli_parse_precision(const char *s, bzn_precision *out);

/* How a command wants its context: every running command fills one from its options. */
typedef struct {
    int width, height;         /* 0: the model's default */
    const char *backend; /* NULL: the library's default */
    bzn_precision precision;
    const char *calib;         /* INT8 with an FP32/FP16 model: a calibration cache */
    const char *keep_fp32;     /* INT8: comma-separated layers kept in FP32 */
    int threads, run_aux, keep_intermediates;
    int batch; /* frames per run (0: one) */
} cli_config;

/* The precision options every running command takes: -p, --calib, --keep-fp32. Put
 * CLI_PRECISION_OPTIONS in the getopt_long table ("p:" in the short options) and pass every
 * option the command does not handle itself to cli_precision_option: 0 handled, EXIT_USAGE
 * for a bad value or an unknown option (the message is printed). */
#define CLI_OPT_CALIB 0x1001
#define CLI_OPT_KEEP_FP32 0x1002
#define CLI_PRECISION_OPTIONS                                                                      \
    {"precision", required_argument, 0, 'p'}, {"calib", required_argument, 0, CLI_OPT_CALIB},      \
        {"keep-fp32", required_argument, 0, CLI_OPT_KEEP_FP32}
#define CLI_PRECISION_HELP                                                                         \
    "  -p, --precision P  fp32 (default) or int8: an INT8 weight file (blazeneo quantize),\n"     \
    "                     or an FP32 model with --calib\n"                                        \
    "  --calib CACHE      INT8 activation scales from a calibration cache (blazeneo calibrate)\n" \
    "  --keep-fp32 NAMES  INT8: comma-separated convolutions kept in FP32\n"
int cli_precision_option(const char *cmd, int opt, const char *arg, cli_config *cfg);

/* Open a model, or create a context of one, as cfg says (reading and checking the calibration
 * cache for INT8); errors are printed as "blazeneo <cmd>: ..."; 0 on success. */
int cli_open(const char *cmd, const char *model_path, const cli_config *cfg, bzn_model **m, bzn_ctx **c);
int cli_ctx_create(const char *cmd, const bzn_model *m, const cli_config *cfg, bzn_ctx **c);

/* a whole number in [lo, hi]; 0 on success */
int cli_parse_int(const char *s, int lo, int hi, int *out);

/* "352" or "512x384" (width x height); 0 on success */
int cli_parse_size(const char *s, int *width, int *height);
/* print "blazeneo <cmd>: <msg>" to stderr; returns EXIT_FAIL */
int cli_error(const char *cmd, const bzn_error *e);
/* usage error: message + hint; returns EXIT_USAGE */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
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
