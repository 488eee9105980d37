/* cli.h - the blazeneo command-line tool: one file per subcommand, shared helpers here. */
#ifndef BZN_CLI_H
#define BZN_CLI_H

#include "blazeneo.h"

/* exit statuses */
#define EXIT_OK 0
#define EXIT_FAIL 1  /* bad input or runtime failure */
#define EXIT_USAGE 2 /* wrong command line */

int cmd_convert(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_segment(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_stream(int argc, char **argv);

/* "cpu" (OpenBLAS) or "ref" (plain C reference); 0 on success */
int cli_parse_backend(const char *s, bzn_backend_kind *out);
const char *cli_backend_name(bzn_backend_kind b);
/* precisions this build runs: "fp32"; 0 on success */
int cli_parse_precision(const char *s);

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
/* open a model and a context with the given options; prints errors; 0 on success */
int cli_open(const char *cmd, const char *model_path, int width, int height, int run_aux, int keep,
             int threads, bzn_backend_kind backend, bzn_model **m, bzn_ctx **c);
double cli_now_ms(void);

#endif
