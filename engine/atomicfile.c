/* atomicfile.c - see atomicfile.h. */
#include "atomicfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

bzn_status bzn_atomic_open(bzn_atomic *a, const char *path, bzn_error *err) {
    char ebuf[128];
    memset(a, 0, sizeof *a);
    a->path = path;
    const size_t plen = strlen(path);
    if (!(a->tmp = malloc(plen + sizeof ".tmp.XXXXXX"))) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    memcpy(a->tmp, path, plen);
    memcpy(a->tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    const int fd = mkstemp(a->tmp);
    if (fd < 0) {
        const int e = errno;
        free(a->tmp);
        a->tmp = NULL;
        return bzn_fail(err, BZN_ERR_IO, "cannot write '%s': cannot create a temporary file there: %s", path,
                        bzn_errno_text(e, ebuf, sizeof ebuf));
    }
    /* mkstemp makes the file private (0600) */
    struct stat old;
    fchmod(fd, stat(path, &old) == 0 && S_ISREG(old.st_mode) ? (old.st_mode & 07777) : 0644);
    if (!(a->f = fdopen(fd, "wb"))) {
        const int e = errno;
        close(fd);
        unlink(a->tmp);
        free(a->tmp);
        a->tmp = NULL;
        return bzn_fail(err, BZN_ERR_IO, "cannot write '%s': %s", path, bzn_errno_text(e, ebuf, sizeof ebuf));
    }
    return BZN_OK;
}

bzn_status bzn_atomic_close(bzn_atomic *a, int discard, bzn_error *err) {
    char ebuf[128];
    int e = 0;
    if (!discard) {
        errno = 0;
        if (fflush(a->f) != 0 || ferror(a->f) || fsync(fileno(a->f)) != 0) e = errno ? errno : EIO;
    }
    if (fclose(a->f) != 0 && !e) e = errno;
    a->f = NULL;
    if (!discard && !e && rename(a->tmp, a->path) != 0) e = errno;
    if (discard || e) unlink(a->tmp);
    free(a->tmp);
    a->tmp = NULL;
    if (discard) return BZN_ERR_IO; /* the caller has reported it */
    if (e) return bzn_fail(err, BZN_ERR_IO, "cannot write '%s': %s", a->path, bzn_errno_text(e, ebuf, sizeof ebuf));
    return BZN_OK;
}
