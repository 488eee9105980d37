/* cmd_convert.c - `blazeneo convert IN.pth OUT [--dtype f32|f16] [-s SIZE]` */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void help(void) {
    printf("usage: blazeneo convert IN.pth OUT [--dtype f32|f16] [-s SIZE]\n\n"
           "Convert a PyTorch BlazeNeo checkpoint (torch.save zip format, a state dict or a\n"
           "{'state_dict': ...}/{'model': ...} wrapper) into a BlazeNeo weight file. The variant\n"
           "(aggregation, auxiliary head, classes) is recognised from the keys and shapes.\n\n"
           "  --dtype f32|f16  storage of convolution weights (BatchNorm stays f32); default f32\n"
           "  -s, --size SIZE  default input size stored in the file, e.g. 352 or 512x384\n"
           "  -h, --help       this help\n");
}

int cmd_convert(int argc, char **argv) {
    static const struct option opts[] = {
        {"dtype", required_argument, 0, 'd'}, {"size", required_argument, 0, 's'}, {"help", no_argument, 0, 'h'}, {0}};
    bzn_convert_options o = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (!strcmp(optarg, "f16")) o.f16 = 1;
            else if (strcmp(optarg, "f32")) return cli_usage_error("convert", "--dtype must be f32 or f16");
            break;
        case 's':
            if (cli_parse_size(optarg, &o.default_width, &o.default_height))
                return cli_usage_error("convert", "invalid size '%s'", optarg);
            break;
        case 'h': help(); return EXIT_OK;
        default: return cli_bad_option("convert", c);
        }
    }
    if (argc - optind != 2) return cli_usage_error("convert", "expected IN.pth and OUT");
    bzn_convert_report r;
    bzn_error e;
    if (bzn_convert_checkpoint(argv[optind], argv[optind + 1], &o, &r, &e) != BZN_OK) return cli_error("convert", &e);
    FILE *info = cli_summary_stream(argv[optind + 1]);
    fprintf(info, "%s -> %s\n", argv[optind], argv[optind + 1]);
    fprintf(info, "  variant   : BlazeNeo %s, %s auxiliary head, %d-class main head\n",
            bzn_aggregation_name(r.aggregation), r.has_aux ? "with" : "without", r.num_classes);
    fprintf(info, "  tensors   : %d written, %d dropped (classifier, num_batches_tracked)\n", r.tensors_written,
            r.tensors_dropped);
    fprintf(info, "  size      : %.1f MB, conv weights %s\n", r.file_bytes / 1e6, o.f16 ? "f16" : "f32");
    if (o.f16)
        fprintf(info, "  f16 error : largest |f32 - f16| = %.3g%s%s\n", r.max_f16_error,
                r.max_f16_error > 0 ? " in " : " (exact: the weights were on the f16 grid)",
                r.max_f16_error > 0 ? r.max_f16_error_tensor : "");
    return EXIT_OK;
}
