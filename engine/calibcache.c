/*
 * calibcache.c - TensorRT's calibration cache: the text format, read, written and matched
 * to a network.
 *
 * "TRT-7103-EntropyCalibration2" (or MinMaxCalibration, LegacyCalibration), then
 * "name: <hex>" per tensor, hex = the float32 bits of the scale; at most
 * BZN_CALIB_MAX_CACHE_ENTRIES entries. Reading it and matching it to a network take
 * O(n log n) time in the number of entries (names are sorted, never compared pairwise).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calibrate.h"
#include "error.h"

/* ---- the cache file ---------------------------------------------------------------------- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Names in sorted order: duplicates are neighbours, lookups are binary searches. */
typedef struct {
    const char *name;
    int index; /* where it came from */
} name_ref;

/* by name, then by index: equal names keep their original order */
static int cmp_name_index(const void *a, const void *b) {
    const name_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const name_ref *)a)->name, ((const name_ref *)b)->name);
}

/* scales[0..n-1]'s names sorted by cmp_name_index; NULL when out of memory */
static name_ref *sorted_scale_names(const bzn_tensor_scale *scales, int n) {
    name_ref *r = malloc((size_t)(n > 0 ? n : 1) * sizeof *r);
    if (!r) return NULL;
    for (int i = 0; i < n; i++) r[i] = (name_ref){scales[i].name, i};
    qsort(r, (size_t)n, sizeof *r, cmp_name_index);
    return r;
}

/* the index of `name` in the sorted r[0..n-1], or -1 */
static int find_name(const name_ref *r, int n, const char *name) {
    const name_ref key = {name, 0};
    const name_ref *hit = n > 0 ? bsearch(&key, r, (size_t)n, sizeof *r, cmp_name) : NULL;
    return hit ? hit->index : -1;
}

/* The first repetition among scales[0..n-1], as a scan in order would meet it: the smallest
 * *second whose name an earlier entry has, and *first, the first entry with that name.
 * 1 when there is one, 0 when the names are distinct, -1 when out of memory. */
static int first_duplicate(const bzn_tensor_scale *scales, int n, int *first, int *second) {
    if (n < 2) return 0;
    name_ref *r = sorted_scale_names(scales, n);
    if (!r) return -1;
    int found = 0, run = 0; /* run: where the current run of equal names starts */
    for (int k = 1; k < n; k++) {
        if (strcmp(r[k - 1].name, r[k].name) != 0) {
            run = k;
        } else if (!found || r[k].index < *second) {
            *first = r[run].index;
            *second = r[k].index;
            found = 1;
        }
    }
    free(r);
    return found;
}

/* a name the cache format can carry: not empty, no control characters, no edge spaces */
static int valid_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || s[0] == ' ' || s[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
    return 1;
}

bzn_status bzn_calib_cache_write(const char *path, const bzn_calib_table *t, bzn_error *err) {
    if (!path || !*path) return bzn_fail(err, BZN_ERR_ARG, "write calibration cache: no path given");
    if (!t || !bzn_calib_trt_name(t->method) || t->count < 0 || (t->count && !t->scales))
        return bzn_fail(err, BZN_ERR_ARG, "write calibration cache '%s': invalid table", path);
    /* refuse what the reader would refuse, the first problem in entry order */
    if (t->count > BZN_CALIB_MAX_CACHE_ENTRIES)
        return bzn_fail(err, BZN_ERR_ARG,
                        "write calibration cache '%s': too many entries (%d): a calibration cache holds at most %d",
                        path, t->count, BZN_CALIB_MAX_CACHE_ENTRIES);
    int bad = t->count; /* the first entry with an invalid name or scale */
    for (int i = 0; i < t->count && bad == t->count; i++) {
        float s = t->scales[i].scale;
        if (!t->scales[i].name || !valid_name(t->scales[i].name) || !isfinite(s) || signbit(s)) bad = i;
    }
    int first, second;
    int dup = first_duplicate(t->scales, bad, &first, &second); /* among the valid ones before it */
    if (dup < 0) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    if (dup)
        return bzn_fail(err, BZN_ERR_ARG, "write calibration cache '%s': '%s' appears twice", path,
                        t->scales[second].name);
    if (bad < t->count) {
        const char *name = t->scales[bad].name;
        if (!name || !valid_name(name))
            return bzn_fail(err, BZN_ERR_ARG, "write calibration cache '%s': entry %d has an invalid name", path, bad);
        return bzn_fail(err, BZN_ERR_ARG, "write calibration cache '%s': the scale of '%s' is %g", path, name,
                        (double)t->scales[bad].scale);
    }
    bzn_writer *out;
    bzn_status s = bzn_writer_open(path, &out, err);
    if (s != BZN_OK) return s;
    FILE *f = bzn_writer_stream(out);
    fprintf(f, "TRT-7103-%s\n", bzn_calib_trt_name(t->method));
    for (int i = 0; i < t->count; i++) fprintf(f, "%s: %x\n", t->scales[i].name, (unsigned)f32_bits(t->scales[i].scale));
    return bzn_writer_close(out, 0, err);
}

static int is_hex(char ch) { return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'); }

/* Parse the header line: TRT-<digits>-<calibrator>. */
static int parse_header(const char *line, bzn_calib_method *m) {
    if (strncmp(line, "TRT-", 4) != 0) return -1;
    const char *p = line + 4;
    if (!(*p >= '0' && *p <= '9')) return -1;
    while (*p >= '0' && *p <= '9') p++;
    if (*p++ != '-') return -1;
    static const bzn_calib_method all[] = {BZN_CALIB_ENTROPY, BZN_CALIB_MINMAX, BZN_CALIB_PERCENTILE};
    for (int i = 0; i < 3; i++)
        if (!strcmp(p, bzn_calib_trt_name(all[i]))) {
            *m = all[i];
            return 0;
        }
    return -1;
}

bzn_status bzn_calib_cache_parse(const void *data, size_t size, bzn_calib_table **out, bzn_error *err) {
    if (!out) return bzn_fail(err, BZN_ERR_ARG, "NULL output pointer");
    *out = NULL;
    if (!data && size) return bzn_fail(err, BZN_ERR_ARG, "NULL data");
    if (size == 0)
        return bzn_fail(err, BZN_ERR_FORMAT, "empty calibration cache (expected a first line like "
                                             "TRT-7103-EntropyCalibration2)");
    if (memchr(data, 0, size)) return bzn_fail(err, BZN_ERR_FORMAT, "not a calibration cache: it holds NUL bytes");
    /* a private copy, cut into NUL-terminated lines */
    char *text = malloc(size + 1);
    if (!text) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    memcpy(text, data, size);
    text[size] = 0;
    /* room for an entry per line after the header, up to the cap */
    size_t lines = 1;
    for (const char *q = text; (q = strchr(q, '\n')) != NULL; q++) lines++;
    const int room = lines - 1 < BZN_CALIB_MAX_CACHE_ENTRIES ? (int)(lines - 1) : BZN_CALIB_MAX_CACHE_ENTRIES;
    bzn_calib_table *t = bzn_calib_table_new(room, BZN_CALIB_ENTROPY);
    int *line_of = malloc((size_t)(room ? room : 1) * sizeof *line_of); /* the line of each entry */
    bzn_status s = BZN_OK;
    if (!t || !line_of) s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    char *p = text;
    /* line by line, stopping at the first malformed one (ln stays below the cap + 3) */
    for (int ln = 1; s == BZN_OK && p; ln++) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        char *line = p;
        p = nl ? nl + 1 : NULL;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[--len] = 0; /* CRLF line ends */
        if (ln == 1) {
            if (parse_header(line, &t->method) != 0)
                s = bzn_fail(err, BZN_ERR_FORMAT,
                             "line 1: '%.60s' is not a calibration cache header (expected TRT-<version>-"
                             "EntropyCalibration2, -MinMaxCalibration or -LegacyCalibration)",
                             line);
            continue;
        }
        if (len == 0) {
            if (!nl) break; /* after the newline that ends the file */
            s = bzn_fail(err, BZN_ERR_FORMAT, "line %d: empty line", ln);
            break;
        }
        if (t->count == BZN_CALIB_MAX_CACHE_ENTRIES) {
            s = bzn_fail(err, BZN_ERR_FORMAT,
                         "line %d: too many entries: a calibration cache holds at most %d (one per tensor)", ln,
                         BZN_CALIB_MAX_CACHE_ENTRIES);
            break;
        }
        char *colon = strrchr(line, ':');
        if (!colon) {
            s = bzn_fail(err, BZN_ERR_FORMAT, "line %d: '%.60s' is not 'name: hex' (no ':')", ln, line);
            break;
        }
        *colon = 0;
        const char *name = line, *hex = colon + 1;
        if (!valid_name(name)) {
            s = bzn_fail(err, BZN_ERR_FORMAT, "line %d: '%.60s' is not a valid tensor name", ln, name);
            break;
        }
        size_t nh = 0;
        if (*hex == ' ')
            while (is_hex(hex[1 + nh])) nh++;
        if (*hex != ' ' || nh == 0 || nh > 8 || hex[1 + nh] != 0) {
            s = bzn_fail(err, BZN_ERR_FORMAT,
                         "line %d: '%.40s' after '%.60s:' is not ' ' and the hexadecimal bits of a float32 (1 to 8 "
                         "hex digits, no 0x)",
                         ln, hex, name);
            break;
        }
        uint32_t bits = (uint32_t)strtoul(hex + 1, NULL, 16);
        float scale = bits_f32(bits);
        if (!isfinite(scale) || signbit(scale)) {
            s = bzn_fail(err, BZN_ERR_FORMAT, "line %d: the scale of '%s' (%s) is %s", ln, name, hex + 1,
                         !isfinite(scale) ? (isnan(scale) ? "NaN" : "infinite") : "negative");
            break;
        }
        char *copy = strdup(name);
        if (!copy) {
            s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
            break;
        }
        t->scales[t->count].name = copy;
        t->scales[t->count].scale = scale;
        t->amax[t->count] = scale * 127.0f;
        line_of[t->count++] = ln;
    }
    /* a name given twice on lines before the first malformed one is what a scan in order would
     * have stopped at: it is reported instead */
    if (s == BZN_OK || s == BZN_ERR_FORMAT) {
        int first, second;
        int dup = first_duplicate(t->scales, t->count, &first, &second);
        if (dup < 0) s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
        else if (dup)
            s = bzn_fail(err, BZN_ERR_FORMAT, "line %d: '%.60s' was already given on line %d", line_of[second],
                         t->scales[second].name, line_of[first]);
    }
    free(text);
    free(line_of);
    if (s != BZN_OK) {
        bzn_calib_table_free(t);
        return s;
    }
    *out = t;
    return BZN_OK;
}

bzn_status bzn_calib_cache_read(const char *path, bzn_calib_table **out, bzn_error *err) {
    if (!out) return bzn_fail(err, BZN_ERR_ARG, "NULL output pointer");
    *out = NULL;
    if (!path) return bzn_fail(err, BZN_ERR_ARG, "read calibration cache: no path given");
    char ebuf[128];
    FILE *f = fopen(path, "rb");
    if (!f) return bzn_fail(err, BZN_ERR_IO, "cannot open '%s': %s", path, bzn_errno_text(errno, ebuf, sizeof ebuf));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    bzn_status s = buf ? BZN_OK : bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    while (s == BZN_OK) {
        if (n == cap) {
            if (cap >= ((size_t)64 << 20)) {
                s = bzn_fail(err, BZN_ERR_FORMAT, "'%s' is over 64 MB: not a calibration cache", path);
                break;
            }
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                s = bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) s = bzn_fail(err, BZN_ERR_IO, "cannot read '%s'", path);
            break;
        }
    }
    fclose(f);
    if (s == BZN_OK) {
        s = bzn_calib_cache_parse(buf, n, out, err);
        if (s != BZN_OK && err) { /* say which file */
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            bzn_fail(err, s, "%s: %s", path, msg);
        }
    }
    free(buf);
    return s;
}

/* ---- matching a table to a network ------------------------------------------------------- */

/* appends to a bounded message; once full, counts what did not fit */
typedef struct {
    char buf[170]; /* two lists and the text around them fit bzn_error's 512 bytes */
    size_t len;
    int dropped;
} msg_list;

static void msg_add(msg_list *m, const char *item) {
    size_t need = strlen(item) + 2;
    if (m->dropped || m->len + need >= sizeof m->buf) {
        m->dropped++;
        return;
    }
    m->len += (size_t)snprintf(m->buf + m->len, sizeof m->buf - m->len, "%s%s", m->len ? ", " : "", item);
}

/* the primary name of the layer that has `name` among its aliases, or NULL */
static const char *alias_of(const bzn_ctx *c, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < bzn_ctx_num_layers(c); i++) {
        bzn_layer_info li;
        if (bzn_ctx_layer(c, i, &li) != BZN_OK || !li.aliases) continue;
        for (const char *p = li.aliases; (p = strstr(p, name)) != NULL; p += n)
            if ((p == li.aliases || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) return li.name;
    }
    return NULL;
}

bzn_status bzn_calib_cache_check(const bzn_calib_table *t, const bzn_ctx *c, bzn_error *err) {
    if (!t || !c) return bzn_fail(err, BZN_ERR_ARG, "NULL table or context");
    bzn_calib_tensor_ref *refs;
    int n = bzn_calib_list_tensors(c, &refs);
    if (n < 0) return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    /* both sides sorted by name: each lookup is a binary search, whatever the table's size */
    name_ref *net = malloc((size_t)(n ? n : 1) * sizeof *net);
    name_ref *tab = t->count > 0 ? sorted_scale_names(t->scales, t->count) : malloc(sizeof *tab);
    if (!net || !tab) {
        free(refs);
        free(net);
        free(tab);
        return bzn_fail(err, BZN_ERR_NOMEM, "out of memory");
    }
    for (int k = 0; k < n; k++) net[k] = (name_ref){refs[k].name, k};
    qsort(net, (size_t)n, sizeof *net, cmp_name_index);
    msg_list unknown = {{0}, 0, 0}, missing = {{0}, 0, 0};
    int n_unknown = 0, n_missing = 0, aux_hint = 0;
    for (int i = 0; i < t->count; i++) {
        const char *name = t->scales[i].name;
        if (find_name(net, n, name) >= 0) continue;
        n_unknown++;
        aux_hint |= !strncmp(name, "agg1.", 5) || !strcmp(name, "head_1.head") || !strcmp(name, "upsample_1");
        if (unknown.dropped) { /* the list is full: only counted (no alias search over the layers) */
            unknown.dropped++;
            continue;
        }
        char item[200];
        const char *primary = alias_of(c, name);
        if (primary) snprintf(item, sizeof item, "%s (an alias of %s)", name, primary);
        else snprintf(item, sizeof item, "%s", name);
        msg_add(&unknown, item);
    }
    for (int k = 0; k < n; k++) {
        if (find_name(tab, t->count, refs[k].name) >= 0) continue;
        n_missing++;
        msg_add(&missing, refs[k].name);
    }
    free(refs);
    free(net);
    free(tab);
    if (!n_unknown && !n_missing) return BZN_OK;
    char more_u[32] = "", more_m[32] = "";
    if (unknown.dropped) snprintf(more_u, sizeof more_u, " and %d more", unknown.dropped);
    if (missing.dropped) snprintf(more_m, sizeof more_m, " and %d more", missing.dropped);
    return bzn_fail(err, BZN_ERR_FORMAT,
                    "calibration cache does not match this network: %d unknown tensor%s%s%s%s%s; %d missing%s%s%s",
                    n_unknown, n_unknown == 1 ? "" : "s", n_unknown ? ": " : "", unknown.buf, more_u,
                    aux_hint ? " (auxiliary branch: the context needs run_aux)" : "", n_missing,
                    n_missing ? ": " : "", missing.buf, more_m);
}
