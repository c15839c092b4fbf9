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

void zero_init(Zero *z, MPI_Comm comm, int stage, size_t n) {
    memset(z, 0, sizeof *z);
    if (stage < 0 || stage > 2) fatal("optim.zero = %d: must be 0, 1 or 2", stage);
    if (n > (size_t)INT_MAX)
        fatal("optimizer buffer of %zu floats: MPI counts reach only %d", n, INT_MAX);
    z->comm = comm;
    z->stage = stage;
    z->n = n;
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
    if (z->nranks > 1) {
        /* in place: the input is the whole buffer, this rank's reduced shard lands at its
         * front; move it to the shard's own offset */
        MPI_CHECK(MPI_Reduce_scatter(MPI_IN_PLACE, grads, z->counts, MPI_FLOAT, MPI_SUM,
                                     z->comm));
        if (z->lo > 0 && z->len > 0) memmove(grads + z->lo, grads, z->len * sizeof(float));
    }
    double s = zero_global_sumsq(z, adamw_grad_sumsq(grads + z->lo, z->len));
    if (z->stage == 1 && z->nranks > 1)
        MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, grads, z->counts,
                                 z->displs, MPI_FLOAT, z->comm));
    return sqrt(s);
}

void zero_step(const Zero *z, AdamW *o, float *params, const float *grads, float lr,
               float grad_scale) {
    ASSERT(o->n == z->len);
    adamw_step_scaled(o, params + z->lo, grads + z->lo, lr, grad_scale);
    if (z->stage > 0 && z->nranks > 1)
        MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, params, z->counts,
                                 z->displs, MPI_FLOAT, z->comm));
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
