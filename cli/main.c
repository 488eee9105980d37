/* main.c - `blazeneo <command> ...`: dispatch to the subcommands. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *help;
} commands[] = {
    {"calibrate", cmd_calibrate, "INT8 calibration: run calibration frames, write a TensorRT cache"},
    {"convert", cmd_convert, "convert a PyTorch checkpoint (.pth) into a BlazeNeo weight file"},
    {"eval", cmd_eval, "measure Dice and IoU on images with ground-truth masks"},
    {"info", cmd_info, "show a model's variant, tensors, parameters, GMAC and layers"},
    {"segment", cmd_segment, "segment JPEG images into colour masks"},
    {"quantize", cmd_quantize, "write an INT8 weight file from a model and a calibration cache"},
    {"sensitivity", cmd_sensitivity, "rank layers by how much quantizing each alone costs"},
    {"trace", cmd_trace, "dump every intermediate tensor of one image as .npy (audit vs PyTorch)"},
    {"bench", cmd_bench, "latency, FPS, memory and per-layer profile of one configuration"},
    {"stream", cmd_stream, "segment raw RGB24 video frames from stdin to stdout (ffmpeg pipes)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: blazeneo <command> [options]\n\n"
               "BlazeNeo %s: polyp segmentation and neoplasm classification for colonoscopy frames.\n\n"
               "commands:\n",
            BZN_VERSION_STRING);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-11s  %s\n", commands[i].name, commands[i].help); /* "sensitivity" is 11 */
    fprintf(f, "\n'blazeneo <command> --help' describes each one.\n");
}

static int run(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("blazeneo %s\n", BZN_VERSION_STRING);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            /* getopt names the program in its messages ("blazeneo segment: unrecognized option
               '--x'"); the command adds only the --help hint, so a bad option is one message */
            static char name[64];
            snprintf(name, sizeof name, "blazeneo %s", commands[i].name);
            argv[1] = name;
            return commands[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "blazeneo: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}

int main(int argc, char **argv) {
    cli_catch_fatal_signals();
    /* Standard output goes through the library's writer, which keeps the cause of a failed
       write, and is checked before the exit status is given: a full disk or a closed pipe
       under `info`, `eval --json` or `--help` is a failure, with its cause. */
    bzn_writer *out = NULL;
    bzn_error e;
    if (bzn_writer_open("-", &out, &e) == BZN_OK) {
        if (isatty(STDOUT_FILENO)) setvbuf(bzn_writer_stream(out), NULL, _IOLBF, 0);
        stdout = bzn_writer_stream(out); /* glibc's stdout is an ordinary variable */
    }
    int rc = run(argc, argv);
    if (out && bzn_writer_close(out, 0, &e) != BZN_OK) {
        fprintf(stderr, "blazeneo: %s\n", e.msg);
        if (rc == EXIT_OK) rc = EXIT_FAIL;
    }
    return rc;
}
