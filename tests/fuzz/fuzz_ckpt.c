/*
 * fuzz_ckpt.c - libFuzzer harness for the PyTorch checkpoint reader (see README.md).
 *
 * Every input goes to bzn_ckpt_read_memory, which must return a status for any bytes at
 * all: never crash, leak, hang or read outside the buffer (ASan/UBSan watch). Inputs that
 * start like a pickle (PROTO opcode, 0x80) also go straight to the pickle VM, so that
 * mutations which insert or delete bytes exercise it without having to keep a zip valid.
 * Built with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, which turns off the zip CRC check.
 */
#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bzn_ckpt ck;
    bzn_error err;
    if (bzn_ckpt_read_memory(data, size, &ck, &err) == BZN_OK) {
        /* Touch every byte of the result: ASan checks the sizes are real. */
        volatile uint8_t sink = 0;
        for (int i = 0; i < ck.count; i++) {
            const bzn_ck_tensor *t = &ck.tensors[i];
            const uint8_t *p = t->data;
            for (size_t j = 0; j < t->nbytes; j++) sink ^= p[j];
            for (const char *c = t->name; *c; c++) sink ^= (uint8_t)*c;
        }
        (void)sink;
        bzn_ckpt_free(&ck);
    }
    if (size > 0 && data[0] == 0x80) {
        pk_vm *vm;
        pk_obj *top;
        if (pk_load(data, size, &vm, &top, &err) == BZN_OK) pk_free(vm);
    }
    return 0;
}
