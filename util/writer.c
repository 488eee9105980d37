/*
 * writer.c - the library's one file writer (bzn_writer_* in blazeneo.h), used by every file
 * the library and the tool write: weight files, calibration caches, PNG masks, the CLI's
 * reports, traces and charts.
 *
 * Where the target is a regular file (or does not exist yet), the bytes go to a temporary
 * file next to it ("<target>.tmp.XXXXXX", created exclusively, so two writers never collide),
 * which is flushed to disk and renamed over the target: readers see the old file or the
 * complete new one, never half of it. A symbolic link is followed: the file it names is the
 * one replaced, the link stays. A device, FIFO or socket, and "-" (standard output), are
 * written in place, since replacing them would put a regular file where a device node was.
 * Every write error is kept with its errno, so the message names the caller's path and the
 * real cause ("No space left on device"). The new file takes the permissions of the file it
 * replaces, or 0666 less the umask.
 *
 * Temporary files in flight are listed in a fixed table that bzn_writer_remove_temporaries()
 * (async-signal-safe) walks, so a program's SIGINT/SIGTERM handler can remove them.
 */
#define _GNU_SOURCE /* fopencookie: a stream whose writes keep their errno */
#include "blazeneo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

struct bzn_writer {
    FILE *f;      /* the caller writes here */
    int fd;       /* what the stream writes to */
    int direct;   /* written in place (device, FIFO, socket, standard output): no rename */
    int werr;     /* errno of the first failed write, 0 if none */
    int slot;     /* this temporary file's entry in the table below, or -1 */
    char *path;   /* as the caller named it: every message uses it */
    char *target; /* the file replaced: path with its symbolic links followed */
    char *tmp;    /* the temporary file beside target, or NULL when direct */
};

/* ---- temporary files in flight, for signal handlers ---------------------------------- */

#define MAX_TEMPS 64
#define TEMP_PATH_MAX 4096
enum { SLOT_FREE, SLOT_FILLING, SLOT_LIVE };
static struct {
    atomic_int state;
    char path[TEMP_PATH_MAX];
} temps[MAX_TEMPS];

static int temp_register(const char *path) {
    if (strlen(path) >= TEMP_PATH_MAX) return -1;
    for (int i = 0; i < MAX_TEMPS; i++) {
        int expected = SLOT_FREE;
        if (atomic_compare_exchange_strong(&temps[i].state, &expected, SLOT_FILLING)) {
            strcpy(temps[i].path, path);
            atomic_store(&temps[i].state, SLOT_LIVE);
            return i;
        }
    }
    return -1; /* more than MAX_TEMPS files at once: this one is simply not listed */
}

static void temp_unregister(int slot) {
    if (slot >= 0) atomic_store(&temps[slot].state, SLOT_FREE);
}

void bzn_writer_remove_temporaries(void) {
    for (int i = 0; i < MAX_TEMPS; i++)
        if (atomic_load(&temps[i].state) == SLOT_LIVE) unlink(temps[i].path);
}

/* ---- the stream ------------------------------------------------------------------------ */

/* A short count marks the stream as failed. Never -1: glibc compares it with a size_t and
 * goes on copying past its buffer (seen with glibc 2.36 on a large fwrite). */
static ssize_t stream_write(void *cookie, const char *buf, size_t n) {
    bzn_writer *w = cookie;
    size_t done = 0;
    while (done < n) {
        const ssize_t k = write(w->fd, buf + done, n - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (!w->werr) w->werr = k < 0 ? errno : EIO;
            break;
        }
        done += (size_t)k;
    }
    return (ssize_t)done;
}

/* `path` with every symbolic link along the final component followed (as open() would),
 * even a dangling one: the file that writing through `path` would create or replace. */
static bzn_status follow_links(const char *path, char **out, bzn_error *err) {
    char ebuf[128];
    char *p = strdup(path);
    if (!p) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    for (int hops = 0;; hops++) {
        struct stat st;
        if (lstat(p, &st) != 0 || !S_ISLNK(st.st_mode)) break;
        if (hops == 40) {
            free(p);
            return bzn_fail(err, BZN_ERR_IO, "cannot write '%s': %s", path, bzn_errno_text(ELOOP, ebuf, sizeof ebuf));
        }
        char link[TEMP_PATH_MAX];
        const ssize_t n = readlink(p, link, sizeof link - 1);
        if (n < 0) {
            const int e = errno;
            free(p);
            return bzn_fail(err, BZN_ERR_IO, "cannot write '%s': %s", path, bzn_errno_text(e, ebuf, sizeof ebuf));
        }
        link[n] = '\0';
        const char *slash = strrchr(p, '/');
        const size_t dir = link[0] == '/' || !slash ? 0 : (size_t)(slash - p) + 1; /* keep "dir/" */
        char *next = malloc(dir + (size_t)n + 1);
        if (!next) {
            free(p);
            return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
        }
        memcpy(next, p, dir);
        memcpy(next + dir, link, (size_t)n + 1);
        free(p);
        p = next;
    }
    *out = p;
    return BZN_OK;
}

/* Create "<target>.tmp.XXXXXX" exclusively, mode 0666 less the umask (applied by the kernel). */
static int create_temp(bzn_writer *w) {
    static atomic_uint counter;
    const size_t len = strlen(w->target);
    if (!(w->tmp = malloc(len + sizeof ".tmp.XXXXXX"))) return -1;
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned v = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL) * 40503u ^
                     atomic_fetch_add(&counter, 1) * 2246822519u ^ (unsigned)attempt * 3266489917u;
        char suffix[7];
        for (int i = 0; i < 6; i++, v /= 36) suffix[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
        suffix[6] = '\0';
        snprintf(w->tmp, len + sizeof ".tmp.XXXXXX", "%s.tmp.%s", w->target, suffix);
        const int fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1;
}

static void writer_free(bzn_writer *w) {
    free(w->path);
    free(w->target);
    free(w->tmp);
    free(w);
}

bzn_status bzn_writer_open(const char *path, bzn_writer **out, bzn_error *err) {
    char ebuf[128];
    if (!out) return bzn_fail(err, BZN_ERR_ARG, "NULL output pointer");
    *out = NULL;
    if (!path || !*path) return bzn_fail(err, BZN_ERR_ARG, "no file name to write");
    bzn_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    }
    w->fd = -1;
    w->slot = -1;
    int e = 0;
    if (!strcmp(path, "-")) {
        w->direct = 1;
        fflush(stdout); /* what the program printed before comes first */
        if ((w->fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0)) < 0) e = errno;
    } else {
        bzn_status s = follow_links(path, &w->target, err);
        if (s != BZN_OK) {
            writer_free(w);
            return s;
        }
        struct stat st;
        const int exists = stat(w->target, &st) == 0;
        if (exists && S_ISDIR(st.st_mode)) {
            e = EISDIR;
        } else if (exists && !S_ISREG(st.st_mode)) { /* a device, FIFO or socket */
            w->direct = 1;
            if ((w->fd = open(w->target, O_WRONLY | O_NOCTTY | O_CLOEXEC)) < 0) e = errno;
        } else if ((w->fd = create_temp(w)) < 0) {
            e = errno ? errno : ENOMEM;
            free(w->tmp);
            w->tmp = NULL;
        } else {
            w->slot = temp_register(w->tmp);
            if (exists) fchmod(w->fd, st.st_mode & 07777);
        }
    }
    if (!e) {
        static const cookie_io_functions_t io = {.write = stream_write};
        if (!(w->f = fopencookie(w, "w", io))) e = errno ? errno : ENOMEM;
    }
    if (e) {
        if (w->fd >= 0) close(w->fd);
        if (w->tmp) unlink(w->tmp);
        temp_unregister(w->slot);
        writer_free(w);
        return bzn_fail(err, BZN_ERR_IO, "cannot write '%s': %s", path, bzn_errno_text(e, ebuf, sizeof ebuf));
    }
    *out = w;
    return BZN_OK;
}

FILE *bzn_writer_stream(bzn_writer *w) { return w ? w->f : NULL; }

int bzn_writer_error(const bzn_writer *w) { return w ? w->werr : 0; }

bzn_status bzn_writer_close(bzn_writer *w, int discard, bzn_error *err) {
    char ebuf[128];
    if (!w) return BZN_OK;
    int e = 0;
    if (!discard && (fflush(w->f) != 0 || ferror(w->f))) e = w->werr ? w->werr : EIO;
    fclose(w->f); /* only frees the stream: the descriptor is closed here */
    if (!discard && !e && !w->direct && fsync(w->fd) != 0) e = errno;
    if (close(w->fd) != 0 && !discard && !e && errno != EINTR) e = errno;
    if (!discard && !e && !w->direct && rename(w->tmp, w->target) != 0) e = errno;
    if (w->tmp && (discard || e)) unlink(w->tmp);
    temp_unregister(w->slot);
    bzn_status s = BZN_OK;
    if (discard)
        s = BZN_ERR_IO; /* the caller has reported why */
    else if (e && !strcmp(w->path, "-"))
        s = bzn_fail(err, BZN_ERR_IO, "cannot write to standard output: %s", bzn_errno_text(e, ebuf, sizeof ebuf));
    else if (e)
        s = bzn_fail(err, BZN_ERR_IO, "cannot write '%s': %s", w->path, bzn_errno_text(e, ebuf, sizeof ebuf));
    writer_free(w);
    return s;
}
