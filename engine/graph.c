/* graph.c - building values and nodes, and planning buffer memory (see graph.h). */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bzn_graph_free(bzn_graph *g) {
    if (!g) return;
    free(g->nodes);
    free(g->bufs);
    memset(g, 0, sizeof *g);
}

int bzn_graph_buffer(bzn_graph *g, int c, int h, int w) {
    if (g->n_bufs == g->cap_bufs) {
        int cap = g->cap_bufs ? 2 * g->cap_bufs : 64;
        bzn_buffer *nb = realloc(g->bufs, (size_t)cap * sizeof *nb);
        if (!nb) return -1;
        g->bufs = nb;
        g->cap_bufs = cap;
    }
    bzn_buffer *b = &g->bufs[g->n_bufs];
    memset(b, 0, sizeof *b);
    b->c = c;
    b->h = h;
    b->w = w;
    b->first = b->last = -1;
    return g->n_bufs++;
}

bzn_value bzn_value_slice(const bzn_graph *g, int buf, int c0, int c) {
    bzn_value v;
    memset(&v, 0, sizeof v);
    v.n = 1;
    v.seg[0].buf = buf;
    v.seg[0].c0 = c0;
    v.seg[0].c = c;
    v.c = c;
    v.h = g->bufs[buf].h;
    v.w = g->bufs[buf].w;
    return v;
}

bzn_value bzn_value_of(const bzn_graph *g, int buf) { return bzn_value_slice(g, buf, 0, g->bufs[buf].c); }

int bzn_value_cat(bzn_value *a, const bzn_value *b) {
    if (a->n == 0) {
        *a = *b;
        return 0;
    }
    for (int i = 0; i < b->n; i++) {
        bzn_slice *last = &a->seg[a->n - 1];
        const bzn_slice *s = &b->seg[i];
        if (last->buf == s->buf && last->c0 + last->c == s->c0) {
            last->c += s->c; /* contiguous in the same buffer: one slice */
        } else {
            if (a->n == BZN_MAX_SEGMENTS) return -1;
            a->seg[a->n++] = *s;
        }
    }
    a->c += b->c;
    return 0;
}

bzn_node *bzn_graph_add(bzn_graph *g, bzn_node_kind kind, const char *name) {
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 128;
        bzn_node *nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return NULL;
        g->nodes = nn;
        g->cap_nodes = cap;
    }
    bzn_node *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    snprintf(n->name, sizeof n->name, "%s", name);
    return n;
}

static void touch(bzn_graph *g, const bzn_value *v, int node) {
    for (int i = 0; i < v->n; i++) {
        bzn_buffer *b = &g->bufs[v->seg[i].buf];
        if (b->first < 0 || node < b->first) b->first = node;
        if (node > b->last) b->last = node;
    }
}


typedef struct {
    const bzn_graph *g;
    int idx;
} order_item;

static int cmp_order(const void *x, const void *y) {
    const order_item *a = x, *b = y;
    const bzn_buffer *ba = &a->g->bufs[a->idx], *bb = &b->g->bufs[b->idx];
    size_t sa = (size_t)ba->c * ba->h * ba->w, sb = (size_t)bb->c * bb->h * bb->w;
    if (sa != sb) return sa < sb ? 1 : -1;
    return a->idx - b->idx;
}

static size_t buf_floats(const bzn_buffer *b) {
    size_t n = (size_t)b->c * b->h * b->w;
    return (n + 15) / 16 * 16; /* keep every buffer 64-byte aligned */
}

/* Greedy by size: place the largest buffers first, each at the lowest offset that does
 * not collide with an already placed buffer whose lifetime overlaps its own. */
size_t bzn_graph_plan(bzn_graph *g, int keep_all) {
    for (int i = 0; i < g->n_bufs; i++) g->bufs[i].first = g->bufs[i].last = -1;
    for (int n = 0; n < g->n_nodes; n++) {
        if (g->nodes[n].kind == BZN_NODE_CONCAT) continue;
        touch(g, &g->nodes[n].in, n);
        touch(g, &g->nodes[n].out, n);
    }
    for (int i = 0; i < g->n_bufs; i++) {
        bzn_buffer *b = &g->bufs[i];
        if (keep_all || b->pinned || b->first < 0) {
            b->first = 0;
            b->last = g->n_nodes;
        }
    }
    order_item *order = malloc((size_t)g->n_bufs * sizeof *order);
    int *placed = malloc((size_t)g->n_bufs * sizeof *placed);
    if (!order || !placed) {
        free(order);
        free(placed);
        return 0;
    }
    for (int i = 0; i < g->n_bufs; i++) order[i] = (order_item){g, i};
    qsort(order, (size_t)g->n_bufs, sizeof *order, cmp_order);
    int n_placed = 0;
    size_t total = 0;
    for (int k = 0; k < g->n_bufs; k++) {
        bzn_buffer *b = &g->bufs[order[k].idx];
        size_t need = buf_floats(b), offset = 0;
        /* scan candidate offsets: 0 and the end of every overlapping placed buffer */
        for (;;) {
            int moved = 0;
            for (int j = 0; j < n_placed; j++) {
                const bzn_buffer *p = &g->bufs[placed[j]];
                if (p->last < b->first || b->last < p->first) continue; /* not alive together */
                size_t pe = p->offset + buf_floats(p);
                if (offset < pe && p->offset < offset + need) {
                    offset = pe;
                    moved = 1;
                }
            }
            if (!moved) break;
        }
        b->offset = offset;
        placed[n_placed++] = order[k].idx;
        if (offset + need > total) total = offset + need;
    }
    free(order);
    free(placed);
    return total;
}

/* whether node j's output is never negative, given whether its input is */
static int out_nonneg(const bzn_node *n, int in_nonneg) {
    return n->kind == BZN_NODE_CONV ? n->act != BZN_ACT_NONE : in_nonneg; /* max, bilinear, concat keep signs */
}

/* whether every slice of v was written, by nodes before `before`, only with values >= 0 */
static int value_nonneg(const bzn_graph *g, const unsigned char *nonneg, int before, const bzn_value *v) {
    for (int s = 0; s < v->n; s++) {
        const bzn_slice *x = &v->seg[s];
        if (x->buf == g->input_buf) return 0;
        int written = 0;
        for (int j = 0; j < before; j++) {
            const bzn_node *w = &g->nodes[j];
            if (w->kind == BZN_NODE_CONCAT) continue; /* writes nothing */
            for (int t = 0; t < w->out.n; t++) {
                const bzn_slice *y = &w->out.seg[t];
                const int lo = y->c0 > x->c0 ? y->c0 : x->c0;
                const int hi = y->c0 + y->c < x->c0 + x->c ? y->c0 + y->c : x->c0 + x->c;
                if (y->buf != x->buf || lo >= hi) continue;
                if (!out_nonneg(w, nonneg[j])) return 0;
                written += hi - lo;
            }
        }
        if (written < x->c) return 0; /* a channel nobody wrote before: not known */
    }
    return 1;
}

void bzn_graph_nonneg_inputs(const bzn_graph *g, unsigned char *nonneg) {
    for (int i = 0; i < g->n_nodes; i++) nonneg[i] = (unsigned char)value_nonneg(g, nonneg, i, &g->nodes[i].in);
}
