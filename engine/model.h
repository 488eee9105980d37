/* model.h - a loaded model: the validated weight file and the folded convolutions. */
#ifndef BZN_MODEL_H
#define BZN_MODEL_H

#include "blazeneo.h"
#include "graph.h"
#include "wfile.h"

struct bzn_model {
    bzn_wfile wf;               /* the mapped, validated file */
    bzn_conv_weights *convs;    /* every convolution, BatchNorm folded, in f32 */
    int n_convs, cap_convs;
    unsigned char *used;        /* per file tensor: consumed by the network */
    int64_t params_main, params_total;
    bzn_tensor_scale *act_scales; /* INT8 weight files: activation scales (`<tensor>.act_scale`) */
    int n_act_scales;
    int int8_file;                /* written by `blazeneo quantize`: its float convs stay FP32 */
};

/* Write a weight file that must load as a model before it replaces `path`: made in memory,
 * opened with bzn_model_open_memory (every check, the architecture included), then written
 * with the library's writer; on any error nothing is left at `path` that was not there.
 * `bytes` (may be NULL): the size written. */
bzn_status bzn_model_write_checked(const char *path, const bzn_wf_config *cfg, const bzn_wf_input *t, int count,
                                   uint64_t *bytes, bzn_error *err);

/* 1 when `name` is one of the comma-separated names of `list` (NULL: none) */
int bzn_name_in_list(const char *list, const char *name);

/* Per-output-channel symmetric int8 quantization of folded weights: scale = max|w| / 127.
 * qweight: cout * per bytes, wscale: cout floats. */
void bzn_quantize_weights(const bzn_conv_weights *cw, int8_t *qweight, float *wscale);

#endif
