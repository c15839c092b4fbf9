/*
 * common/zero.h — the optimizer sharded over data-parallel ranks: ZeRO stages 1 and 2
 * (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion
 * Parameter Models", arXiv:1910.02054), for one (params, grads, n) buffer triple.
 *
 * With K ranks, rank r owns the contiguous shard [lo, lo + len) of the buffer: shards are
 * ceil(n / K) rounded up to 16 floats (a 64-byte line), the last ones shorter or empty.
 * Its AdamW (adamw.h) holds m and v for the shard only — 1/K of the replicated bytes —
 * and its decay table is the buffer's table cut to the shard and shifted to offset 0, so
 * element i of the shard decays exactly when element lo + i of the buffer does. A step:
 *     norm = zero_reduce_grads(&z, grads);      // collective; the same norm on every rank
 *     if (!isfinite(norm)) skip;                // every rank skips together
 *     zero_step(&z, &opt, params, grads, lr, adamw_clip_scale(norm, max_norm));
 *
 * The stages (config key optim.zero):
 *   0  replicated: MPI_Allreduce of the whole gradient, every rank updates every
 *      parameter with full-length moments (bit for bit the unsharded optimizer).
 *   1  optimizer-state sharding (the paper's P_os): MPI_Reduce_scatter of the gradient,
 *      then MPI_Allgatherv of the reduced gradient, so every rank still holds the whole
 *      reduced gradient in the model's gradient buffer (as with 0); each rank updates its
 *      shard with its shard of the moments; MPI_Allgatherv of the updated parameters.
 *   2  plus gradient sharding (P_os+g): MPI_Reduce_scatter only; the reduced gradient
 *      exists only as this rank's shard, at [lo, lo + len) of the model's gradient
 *      buffer — the rest of that buffer keeps this rank's local (unreduced) gradient.
 * The sharded collectives run in rounds of at most 16 MiB packed into one scratch buffer:
 * MPI's own temporaries grow with the message, and would otherwise add up to the size of
 * the whole gradient to the peak memory the sharding is meant to lower.
 * What stage 2 saves here: the gradient all-gather (about n (K-1)/K floats of traffic
 * per rank per step) and any later reader of a whole reduced gradient. It saves no
 * memory: the backward pass accumulates into a full-length local gradient buffer, which
 * the shard is reduced out of in place. Bucketed reduce-scatter during the backward pass
 * (the paper's real stage-2 saving) is not done.
 *
 * Numbers: the global norm of stages 1 and 2 is sqrt of the ranks' shard sums of squares
 * added over ranks (MPI_Allreduce of one double), so it differs from stage 0's in the last
 * bits; the per-element update is the same arithmetic. With a fixed rank count every
 * stage is bit-for-bit reproducible.
 *
 * Checkpoints keep the unsharded layout: zero_gather_moments collects the full m and v on
 * rank 0, zero_scatter_moments takes them (read by every rank) back into the shard, so a
 * checkpoint restores onto any rank count and any stage.
 */
#ifndef RLHF_ZERO_H
#define RLHF_ZERO_H

#include <mpi.h>
#include <stddef.h>

#include "adamw.h"

typedef struct {
    MPI_Comm comm;
    int stage;             /* 0, 1 or 2 */
    int rank, nranks;
    size_t n;              /* the whole buffer */
    size_t lo, len;        /* this rank's shard (stage 0: 0, n) */
    int *counts, *displs;  /* (nranks) every rank's shard, for the collectives */
    size_t round;          /* floats per collective round over all ranks (default below;
                              tests lower it to run many rounds on a small buffer) */
} Zero;

/* The sharded collectives move the buffer in rounds of at most this many floats (16 MiB)
 * packed into one scratch buffer: MPI's reduce-scatter and all-gather allocate
 * temporaries as large as the message (an in-place MPI_Reduce_scatter of GPT-2 124M's
 * gradient added ~0.7 GiB of peak RSS per rank on 2 ranks, Open MPI 4.1), so the rounds
 * bound what the collectives add to about 2 x 16 MiB whatever the model. */
#define ZERO_ROUND_FLOATS ((size_t)1 << 22)

/* Plan the shards of an n-float buffer over comm for stage 0, 1 or 2. Collective-free.
 * Aborts (fatal) on a stage outside 0..2 or n beyond what MPI counts address. */
void zero_init(Zero *z, MPI_Comm comm, int stage, size_t n);
void zero_free(Zero *z); /* NULL or zeroed: no-op */

/* Set up o as this rank's optimizer: moments for the shard (the whole buffer at stage 0)
 * and the buffer's decay table (ranges over [0, n)) cut to the shard. 0, or -1 + err
 * when the table does not tile [0, n). */
int zero_adamw_init(const Zero *z, AdamW *o, const AdamWConfig *c, const AdamWRange *ranges,
                    int num_ranges, char *err);

/* Sum grads over the ranks as the stage says and return the global L2 norm of the
 * reduced gradient (identical on every rank; non-finite when any element is). Collective. */
double zero_reduce_grads(const Zero *z, float *grads);

/* One AdamW update (adamw_step_scaled) of this rank's shard of params from the reduced
 * shard of grads; stages 1 and 2 then all-gather params. Collective at stages 1, 2. */
void zero_step(const Zero *z, AdamW *o, float *params, const float *grads, float lr,
               float grad_scale);

/* Rank 0 receives the full moments (n floats each) in m_full, v_full (other ranks may pass
 * NULL). Collective. */
void zero_gather_moments(const Zero *z, const AdamW *o, float *m_full, float *v_full);
/* Take this rank's slice of full moments (n floats each, the same on every rank). */
void zero_scatter_moments(const Zero *z, AdamW *o, const float *m_full, const float *v_full);

/* Bytes this rank's optimizer state holds (m and v). */
size_t zero_optimizer_bytes(const AdamW *o);

#endif
