/* error.h - filling a caller's bzn_error; the library's only way to report a problem. */
#ifndef BZN_ERROR_H
#define BZN_ERROR_H

#include <stddef.h>

#include "blazeneo.h"

#if defined(__GNUC__)
#define BZN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define BZN_PRINTF(a, b)
#endif

/* Sets err (when not NULL) to status and the formatted message; returns status. */
bzn_status bzn_fail(bzn_error *err, bzn_status status, const char *fmt, ...) BZN_PRINTF(3, 4);
/* The same for code that goes on after an error and checks once at the end (the graph
 * builder, the folder): only the first failure is kept, in *first and err; returns *first. */
bzn_status bzn_fail_first(bzn_status *first, bzn_error *err, bzn_status status, const char *fmt, ...)
    BZN_PRINTF(4, 5);

/* The text of an errno value, thread-safe (POSIX strerror_r): into buf, which is returned. */
const char *bzn_errno_text(int errnum, char *buf, size_t len);

#endif
