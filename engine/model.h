/* model.h - a loaded model: the validated weight file and the folded convolutions. */
#ifndef BZN_MODEL_H
#define BZN_MODEL_H

#include <pthread.h>

#include "blazeneo.h"
#include "graph.h"
#include "wfile.h"

struct bzn_model {
    bzn_wfile wf;               /* the mapped, validated file */
    bzn_conv_weights *convs;    /* every convolution: checked, BatchNorm folded into scale and bias */
    int n_convs, cap_convs;
    unsigned char *used;        /* per file tensor: consumed by the network */
    int64_t params_main, params_total;
    bzn_tensor_scale *act_scales; /* INT8 weight files: activation scales (`<tensor>.act_scale`) */
    int n_act_scales;
    int int8_file;                /* written by `blazeneo quantize`: its float convs stay FP32 */
    /* the forms contexts run, per backend (weightcache.c), under `lock` */
    pthread_mutex_t lock;
    struct bzn_weight_cache *caches;
    size_t prepared_bytes;
};

/* fold.c: fold every convolution node of g (the whole network, at loading) from the weight
 * file into m->convs, checking shapes and marking the tensors used; bind: point a context's
 * graph's convolution nodes at those folded weights, by module path. */
bzn_status bzn_model_fold(bzn_model *m, bzn_graph *g, bzn_error *err);
bzn_status bzn_model_bind(const bzn_model *m, bzn_graph *g, bzn_error *err);
/* fold.c: the float weights of `cw` (cw->src >= 0) with its BatchNorm folded in, into `dst`
 * (cout x cin x k x k floats): the values the loader checked, bit for bit. */
void bzn_conv_fold_floats(const bzn_model *m, const bzn_conv_weights *cw, float *dst);

/* The precision the weight file is made for: INT8 for an INT8 weight file (int8 convolution
 * weights and the activation scales), else FP32 (bzn_model_info.precision). */
bzn_precision bzn_model_file_precision(const bzn_model *m);

/* Write a weight file that must load as a model before it replaces `path`: made in memory,
 * opened with bzn_model_open_memory (every check, the architecture included), then written
 * with the library's writer; on any error nothing is left at `path` that was not there.
 * `bytes` (may be NULL): the size written. */
bzn_status bzn_model_write_checked(const char *path, const bzn_wf_config *cfg, const bzn_wf_input *t, int count,
                                   uint64_t *bytes, bzn_error *err);


#endif
