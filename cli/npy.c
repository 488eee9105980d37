/* npy.c - see npy.h. Header: "\x93NUMPY" 1 0, u16 header length, a Python dict literal
 * {'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 352, 352), } padded with
 * spaces to a multiple of 64 bytes and ended by '\n'; then the raw data. */
#include "npy.h"

#include "cli.h"

#include <stdarg.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>



bzn_status bzn_npy_write(const char *path, const float *data, int ndim, const int64_t *shape, bzn_error *err) {
    char dict[256];
    int len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        len += snprintf(dict + len, sizeof dict - (size_t)len, "%lld,%s", (long long)shape[i],
                        i + 1 < ndim ? " " : "");
        count *= (size_t)shape[i];
    }
    len += snprintf(dict + len, sizeof dict - (size_t)len, "), }");
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64;
    char header[512];
    memcpy(header, "\x93NUMPY\x01\x00", 8);
    int hlen = len + pad + 1;
    header[8] = (char)(hlen & 0xFF);
    header[9] = (char)(hlen >> 8);
    memcpy(header + 10, dict, (size_t)len);
    memset(header + 10 + len, ' ', (size_t)pad);
    header[10 + len + pad] = '\n';

    bzn_writer *w;
    bzn_status s = bzn_writer_open(path, &w, err);
    if (s != BZN_OK) return s;
    FILE *f = bzn_writer_stream(w);
    if (fwrite(header, 1, (size_t)(10 + hlen), f) == (size_t)(10 + hlen)) fwrite(data, sizeof(float), count, f);
    return bzn_writer_close(w, 0, err); /* a short write leaves the stream's error flag set */
}

bzn_status bzn_npy_read(const char *path, float **data, int *ndim, int64_t shape[8], bzn_error *err) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return cli_fail(err, BZN_ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char pre[10];
    char header[4096];
    bzn_status s = BZN_OK;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0 || pre[6] != 1) {
        fclose(f);
        return cli_fail(err, BZN_ERR_FORMAT, "%s: not a version-1 .npy file", path);
    }
    size_t hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    if (hlen >= sizeof header || fread(header, 1, hlen, f) != hlen) {
        fclose(f);
        return cli_fail(err, BZN_ERR_FORMAT, "%s: bad .npy header", path);
    }
    header[hlen] = 0;
    const char *sh = strstr(header, "'shape': (");
    if (!strstr(header, "'descr': '<f4'") || !strstr(header, "'fortran_order': False") || !sh) {
        fclose(f);
        return cli_fail(err, BZN_ERR_FORMAT, "%s: only little-endian float32 C-order arrays are read", path);
    }
    sh += 10;
    int nd = 0;
    size_t count = 1;
    while (*sh && *sh != ')') {
        char *end;
        long long v = strtoll(sh, &end, 10);
        if (end == sh) break;
        if (nd == 8 || v < 0) {
            fclose(f);
            return cli_fail(err, BZN_ERR_FORMAT, "%s: unsupported shape", path);
        }
        if (v > 0 && count > ((size_t)1 << 40) / (size_t)v) {
            fclose(f);
            return cli_fail(err, BZN_ERR_FORMAT, "%s: array too large", path);
        }
        shape[nd++] = v;
        count *= (size_t)v;
        sh = end;
        while (*sh == ',' || *sh == ' ') sh++;
    }
    *ndim = nd;
    float *buf = malloc(count * sizeof(float) + 1);
    if (!buf) s = cli_fail(err, BZN_ERR_NOMEM, "%s: out of memory", path);
    else if (fread(buf, sizeof(float), count, f) != count) s = cli_fail(err, BZN_ERR_FORMAT, "%s: truncated", path);
    fclose(f);
    if (s != BZN_OK) {
        free(buf);
        return s;
    }
    *data = buf;
    return BZN_OK;
}
