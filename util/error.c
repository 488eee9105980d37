/* error.c - status names and the error-setting helper used by all library code. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

const char *bzn_status_name(bzn_status s) {
    switch (s) {
    case BZN_OK: return "ok";
    case BZN_ERR_ARG: return "invalid argument";
    case BZN_ERR_IO: return "i/o error";
    case BZN_ERR_FORMAT: return "malformed input";
    case BZN_ERR_UNSUPPORTED: return "unsupported";
    case BZN_ERR_NOMEM: return "out of memory";
    case BZN_ERR_BACKEND: return "backend error";
    case BZN_ERR_NONFINITE: return "non-finite output";
    }
    return "unknown status";
}

static void fill(bzn_error *err, bzn_status status, const char *fmt, va_list ap) {
    if (!err) return;
    err->status = status;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

bzn_status bzn_fail(bzn_error *err, bzn_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fill(err, status, fmt, ap);
    va_end(ap);
    return status;
}

bzn_status bzn_fail_first(bzn_status *first, bzn_error *err, bzn_status status, const char *fmt, ...) {
    if (*first != BZN_OK) return *first; /* keep the first error */
    *first = status;
    va_list ap;
    va_start(ap, fmt);
    fill(err, status, fmt, ap);
    va_end(ap);
    return status;
}

const char *bzn_errno_text(int errnum, char *buf, size_t len) {
    if (strerror_r(errnum, buf, len) != 0) snprintf(buf, len, "error %d", errnum);
    return buf;
}
