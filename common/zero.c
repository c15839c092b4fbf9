/*
 * common/zero.c — the sharded optimizer step (ZeRO stages 1 and 2; zero.h has the
 * stages, what each holds and what the checkpoint keeps).
 */
#include "zero.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_util.h"
#include "util.h"

/* Shards are whole 64-byte lines so no two ranks' slices share a cache line. */
#define ZERO_ALIGN 16

/* Round p of the buffer: every rank's piece [displs[r] + p q, ... + cnt[r]), packed in
 * rank order at off[r] of the scratch buffer. Returns the floats in the round. */
static size_t zero_round(const Zero *z, size_t q, size_t p, int *cnt, int *off) {
    size_t total = 0;
    for (int r = 0; r < z->nranks; r++) {
        size_t len = (size_t)z->counts[r], a = p * q < len ? p * q : len;
        size_t b = a + q < len ? a + q : len;
        cnt[r] = (int)(b - a);
        off[r] = (int)total;
        total += b - a;
    }
    return total;
}

/* Floats per rank per round (whole lines) and the number of rounds (the same everywhere:
 * from the largest shard). */
static size_t zero_rounds(const Zero *z, size_t *q) {
    size_t per = z->round / (size_t)z->nranks / ZERO_ALIGN * ZERO_ALIGN;
    *q = per > ZERO_ALIGN ? per : ZERO_ALIGN;
    size_t most = 0;
    for (int r = 0; r < z->nranks; r++) most = (size_t)z->counts[r] > most ? (size_t)z->counts[r] : most;
    if (most < *q) *q = most > 0 ? most : 1; /* a small buffer: one round, no larger scratch */
    return (most + *q - 1) / *q;
}

/* Sum buf over ranks, leaving this rank's shard of the sum in buf[lo, lo + len) (the
 * rest of buf unchanged: each rank's local values). */
static void zero_reduce_scatter(const Zero *z, float *buf) {
    size_t q, rounds = zero_rounds(z, &q);
    int *cnt = xmalloc(2 * (size_t)z->nranks * sizeof(int)), *off = cnt + z->nranks;
    float *pack = xalloc_floats(q * (size_t)z->nranks);
    for (size_t p = 0; p < rounds; p++) {
        zero_round(z, q, p, cnt, off);
        for (int r = 0; r < z->nranks; r++)
            memcpy(pack + off[r], buf + z->displs[r] + p * q, (size_t)cnt[r] * sizeof(float));
        MPI_CHECK(MPI_Reduce_scatter(pack, buf + z->lo + p * q, cnt, MPI_FLOAT, MPI_SUM,
                                     z->comm));
    }
    free(pack);
    free(cnt);
}

/* Every rank's shard [displs[r], + counts[r]) of buf to every rank. */
static void zero_allgather(const Zero *z, float *buf) {
    size_t q, rounds = zero_rounds(z, &q);
    int *cnt = xmalloc(2 * (size_t)z->nranks * sizeof(int)), *off = cnt + z->nranks;
    float *pack = xalloc_floats(q * (size_t)z->nranks);
    for (size_t p = 0; p < rounds; p++) {
        zero_round(z, q, p, cnt, off);
        MPI_CHECK(MPI_Allgatherv(buf + z->lo + p * q, cnt[z->rank], MPI_FLOAT, pack, cnt, off,
                                 MPI_FLOAT, z->comm));
        for (int r = 0; r < z->nranks; r++)
            if (r != z->rank)
                memcpy(buf + z->displs[r] + p * q, pack + off[r], (size_t)cnt[r] * sizeof(float));
    }
    free(pack);
    free(cnt);
}

void zero_init(Zero *z, MPI_Comm comm, int stage, size_t n) {
    memset(z, 0, sizeof *z);
    if (stage < 0 || stage > 2) fatal("optim.zero = %d: must be 0, 1 or 2", stage);
    if (n > (size_t)INT_MAX)
        fatal("optimizer buffer of %zu floats: MPI counts reach only %d", n, INT_MAX);
    z->comm = comm;
    z->stage = stage;
    z->n = n;
    z->round = ZERO_ROUND_FLOATS;
    MPI_CHECK(MPI_Comm_rank(comm, &z->rank));
    MPI_CHECK(MPI_Comm_size(comm, &z->nranks));
    z->counts = xcalloc((size_t)z->nranks, sizeof(int));
    z->displs = xcalloc((size_t)z->nranks, sizeof(int));
    size_t K = (size_t)z->nranks;
    size_t chunk = stage == 0 ? n : (n + K - 1) / K;
    chunk = (chunk + ZERO_ALIGN - 1) / ZERO_ALIGN * ZERO_ALIGN;
    for (int r = 0; r < z->nranks; r++) {
        size_t lo = stage == 0 ? 0 : (size_t)r * chunk;
        if (lo > n) lo = n;
        size_t hi = lo + chunk < n ? lo + chunk : n;
        z->displs[r] = (int)lo;
        z->counts[r] = (int)(hi - lo);
    }
    z->lo = (size_t)z->displs[z->rank];
    z->len = (size_t)z->counts[z->rank];
}

void zero_free(Zero *z) {
    if (!z) return;
    free(z->counts);
    free(z->displs);
    memset(z, 0, sizeof *z);
}

int zero_adamw_init(const Zero *z, AdamW *o, const AdamWConfig *c, const AdamWRange *ranges,
                    int num_ranges, char *err) {
    /* Check the whole table against the whole buffer first, on every rank alike (a
     * verdict from the slice alone could differ between ranks): adamw_set_decay_table
     * reads only n and the table, so a moment-less AdamW of length n does the check and
     * leaves the rows sorted. */
    AdamW full = {.n = z->n};
    if (adamw_set_decay_table(&full, ranges, num_ranges, err) != 0) return -1;
    AdamWRange *cut = xcalloc((size_t)(full.num_ranges > 0 ? full.num_ranges : 1), sizeof *cut);
    int nc = 0;
    const size_t lo = z->lo, hi = z->lo + z->len;
    for (int i = 0; i < full.num_ranges; i++) {
        size_t a = full.ranges[i].offset, b = a + full.ranges[i].numel;
        if (a < lo) a = lo;
        if (b > hi) b = hi;
        if (a >= b) continue;
        cut[nc++] = (AdamWRange){.offset = a - lo, .numel = b - a, .decay = full.ranges[i].decay};
    }
    free(full.ranges);
    adamw_init(o, z->len, c);
    int rc = adamw_set_decay_table(o, cut, nc, err);
    free(cut);
    return rc;
}

/* Sum of the ranks' partial sums of squares, added in rank order on every rank: the same
 * double everywhere, whatever MPI's reduction order. */
static double zero_global_sumsq(const Zero *z, double mine) {
    if (z->nranks == 1) return mine;
    double *all = xmalloc((size_t)z->nranks * sizeof(double));
    MPI_CHECK(MPI_Allgather(&mine, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, z->comm));
    double s = 0.0;
    for (int r = 0; r < z->nranks; r++) s += all[r];
    free(all);
    return s;
}

double zero_reduce_grads(const Zero *z, float *grads) {
    if (z->stage == 0) {
        if (z->nranks > 1)
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, grads, (int)z->n, MPI_FLOAT, MPI_SUM, z->comm));
        return adamw_grad_norm(grads, z->n);
    }
    if (z->nranks > 1) zero_reduce_scatter(z, grads);
    double s = zero_global_sumsq(z, adamw_grad_sumsq(grads + z->lo, z->len));
    if (z->stage == 1 && z->nranks > 1) zero_allgather(z, grads);
    return sqrt(s);
}

void zero_step(const Zero *z, AdamW *o, float *params, const float *grads, float lr,
               float grad_scale) {
    ASSERT(o->n == z->len);
    adamw_step_scaled(o, params + z->lo, grads + z->lo, lr, grad_scale);
    if (z->stage > 0 && z->nranks > 1) zero_allgather(z, params);
}

void zero_gather_moments(const Zero *z, const AdamW *o, float *m_full, float *v_full) {
    ASSERT(o->n == z->len);
    if (z->stage == 0 || z->nranks == 1) {
        if (z->rank == 0) {
            memcpy(m_full, o->m, z->n * sizeof(float));
            memcpy(v_full, o->v, z->n * sizeof(float));
        }
        return;
    }
    MPI_CHECK(MPI_Gatherv(o->m, (int)z->len, MPI_FLOAT, m_full, z->counts, z->displs, MPI_FLOAT,
                          0, z->comm));
    MPI_CHECK(MPI_Gatherv(o->v, (int)z->len, MPI_FLOAT, v_full, z->counts, z->displs, MPI_FLOAT,
                          0, z->comm));
}

void zero_scatter_moments(const Zero *z, AdamW *o, const float *m_full, const float *v_full) {
    ASSERT(o->n == z->len);
    memcpy(o->m, m_full + z->lo, z->len * sizeof(float));
    memcpy(o->v, v_full + z->lo, z->len * sizeof(float));
}

size_t zero_optimizer_bytes(const AdamW *o) {
    return 2 * o->n * sizeof(float);
}
