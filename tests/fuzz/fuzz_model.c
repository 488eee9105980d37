/*
 * fuzz_model.c - libFuzzer harness for the weight-file reader and model loader (see README.md).
 *
 * Every input goes to bzn_wfile_open_memory (header, tensor table, bounds, alignment, names,
 * dtypes, shapes) and, when that accepts it, through bzn_model_open_memory (the architecture
 * recognised from the tensors, BatchNorm folded). Any bytes must give a status: never a crash,
 * an out-of-bounds read, undefined behaviour or a leak. Checksums are ignored in this build
 * (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION), so mutations reach the checks behind them.
 */
#include <stddef.h>
#include <stdint.h>

#include "blazeneo.h"
#include "wfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bzn_wfile wf;
    bzn_error err;
    if (bzn_wfile_open_memory(data, size, &wf, &err) == BZN_OK) {
        volatile uint8_t sink = 0; /* touch every tensor's bytes: ASan checks the bounds */
        for (int i = 0; i < wf.count; i++) {
            const uint8_t *p = wf.tensors[i].data;
            for (uint64_t j = 0; j < wf.tensors[i].nbytes; j++) sink ^= p[j];
        }
        (void)sink;
        bzn_wfile_close(&wf);
        bzn_model *m;
        if (bzn_model_open_memory(data, size, &m, &err) == BZN_OK) bzn_model_free(m);
    }
    return 0;
}
