/*
 * common/adamw.c — AdamW, gradient clipping and the learning-rate schedule (adamw.h has
 * the formulas and the conventions). The update is one loop over the decay table's
 * ranges; per-element arithmetic is float (like the parameters), the bias corrections
 * and every reduction are computed in double.
 */
#include "adamw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "util.h"

// ----------------------------------------------------------------------------
// config and lifetime

AdamWConfig adamw_config_default(void) {
    return (AdamWConfig){.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
}

int adamw_config_validate(const AdamWConfig *c, char *err) {
    if (!(isfinite(c->beta1) && c->beta1 >= 0.0f && c->beta1 < 1.0f))
        return errf(err, "adamw beta1 = %g: must be in [0, 1)", (double)c->beta1);
    if (!(isfinite(c->beta2) && c->beta2 >= 0.0f && c->beta2 < 1.0f))
        return errf(err, "adamw beta2 = %g: must be in [0, 1)", (double)c->beta2);
    if (!(isfinite(c->eps) && c->eps > 0.0f))
        return errf(err, "adamw eps = %g: must be a positive number (e.g. 1e-8)",
                    (double)c->eps);
    if (!(isfinite(c->weight_decay) && c->weight_decay >= 0.0f))
        return errf(err, "adamw weight_decay = %g: must be >= 0 (e.g. 0.1)",
                    (double)c->weight_decay);
    return 0;
}

void adamw_init(AdamW *o, size_t n, const AdamWConfig *c) {
    memset(o, 0, sizeof *o);
    o->cfg = *c;
    o->n = n;
    o->m = xalloc_floats(n > 0 ? n : 1);
    o->v = xalloc_floats(n > 0 ? n : 1);
    o->step = 0;
    o->num_ranges = n > 0 ? 1 : 0;
    o->ranges = xcalloc(1, sizeof(AdamWRange));
    o->ranges[0] = (AdamWRange){.offset = 0, .numel = n, .decay = 1};
}

void adamw_free(AdamW *o) {
    if (!o) return;
    free(o->m);
    free(o->v);
    free(o->ranges);
    memset(o, 0, sizeof *o);
}

void adamw_reset(AdamW *o) {
    memset(o->m, 0, o->n * sizeof(float));
    memset(o->v, 0, o->n * sizeof(float));
    o->step = 0;
}

// ----------------------------------------------------------------------------
// decay table

static int range_cmp(const void *a, const void *b) {
    size_t x = ((const AdamWRange *)a)->offset, y = ((const AdamWRange *)b)->offset;
    return x < y ? -1 : x > y ? 1 : 0;
}

int adamw_set_decay_table(AdamW *o, const AdamWRange *ranges, int num_ranges, char *err) {
    if (num_ranges < 0 || (num_ranges == 0 && o->n > 0))
        return errf(err, "adamw decay table: %d rows cannot cover %zu parameters",
                    num_ranges, o->n);
    for (int i = 0; i < num_ranges; i++) {
        if (ranges[i].numel == 0)
            return errf(err, "adamw decay table row %d (offset %zu): numel is 0", i,
                        ranges[i].offset);
        if (ranges[i].offset > o->n || ranges[i].numel > o->n - ranges[i].offset)
            return errf(err,
                        "adamw decay table row %d: [%zu, %zu + %zu) is outside the %zu "
                        "parameters",
                        i, ranges[i].offset, ranges[i].offset, ranges[i].numel, o->n);
    }
    AdamWRange *r = xmalloc((size_t)(num_ranges > 0 ? num_ranges : 1) * sizeof *r);
    if (num_ranges > 0) memcpy(r, ranges, (size_t)num_ranges * sizeof *r);
    qsort(r, (size_t)num_ranges, sizeof *r, range_cmp);
    size_t expect = 0;
    for (int i = 0; i < num_ranges; i++) {
        if (r[i].offset != expect) {
            int rc = errf(err,
                          "adamw decay table: %s at parameter %zu (a row starts at %zu); "
                          "the rows must tile [0, %zu) exactly",
                          r[i].offset < expect ? "rows overlap" : "gap", expect, r[i].offset,
                          o->n);
            free(r);
            return rc;
        }
        expect = r[i].offset + r[i].numel;
    }
    if (expect != o->n) {
        free(r);
        return errf(err, "adamw decay table covers [0, %zu) but there are %zu parameters",
                    expect, o->n);
    }
    for (int i = 0; i < num_ranges; i++) r[i].decay = r[i].decay ? 1 : 0;
    free(o->ranges);
    o->ranges = r;
    o->num_ranges = num_ranges;
    return 0;
}

int adamw_decay_table_gpt(AdamWRange *out, const GPTTensor *tensors, int n) {
    for (int i = 0; i < n; i++)
        out[i] = (AdamWRange){.offset = tensors[i].offset,
                              .numel = tensors[i].numel,
                              .decay = tensors[i].ndim == 2};
    return n;
}

int adamw_decays(const AdamW *o, size_t i) {
    ASSERT(i < o->n);
    for (int k = 0; k < o->num_ranges; k++)
        if (i >= o->ranges[k].offset && i - o->ranges[k].offset < o->ranges[k].numel)
            return o->ranges[k].decay;
    ASSERT(0 && "decay table does not cover parameter");
    return 0;
}

// ----------------------------------------------------------------------------
// the update

/* The element-wise passes below are split over the kernels' thread pool (ops.h) in
 * contiguous chunks; every element's arithmetic is the same whatever the split, so results
 * do not depend on the thread count. The update loop vectorises (the Makefile's
 * -fno-math-errno lets GCC use vsqrtps, correctly rounded like sqrtss; -std=c11 keeps
 * mul and add unfused), bit-identical to the scalar loop. 124M parameters: 291 ms before,
 * single-threaded and scalar. */
/* Below this many elements a pass runs on the calling thread only. */
#define ADAMW_PAR_MIN (1 << 18)

typedef struct {
    const AdamW *o;
    float *params;
    const float *grads;
    float lr, inv_bc1, inv_bc2, gscale;
} AdamWJob;

static void adamw_step_range(const AdamW *o, float *restrict p, const float *restrict g, float lr,
                             float inv_bc1, float inv_bc2, float gs, size_t lo, size_t hi) {
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    float *restrict m = o->m, *restrict v = o->v;
    for (int k = 0; k < o->num_ranges; k++) {
        size_t a = o->ranges[k].offset, b = a + o->ranges[k].numel;
        if (a < lo) a = lo;
        if (b > hi) b = hi;
        if (a >= b) continue;
        const float wd = o->ranges[k].decay ? o->cfg.weight_decay : 0.0f;
        for (size_t i = a; i < b; i++) {
            float gi = g[i] * gs; /* gs = 1 is exact: the unscaled update */
            float mi = b1 * m[i] + (1.0f - b1) * gi;
            float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            float mhat = mi * inv_bc1, vhat = vi * inv_bc2;
            p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
        }
    }
}

/* Contiguous share [lo, hi) of `units` work units for part i of parts. */
static void adamw_share(size_t units, int i, int parts, size_t *lo, size_t *hi) {
    *lo = units * (size_t)i / (size_t)parts;
    *hi = units * (size_t)(i + 1) / (size_t)parts;
}

/* Contiguous share of n elements for part i of parts, in whole 64-byte lines. */
static void adamw_chunk(size_t n, int i, int parts, size_t *lo, size_t *hi) {
    adamw_share((n + 15) / 16, i, parts, lo, hi);
    *lo = *lo * 16 < n ? *lo * 16 : n;
    *hi = *hi * 16 < n ? *hi * 16 : n;
}

static void adamw_step_part(void *arg, int part, int nparts) {
    const AdamWJob *j = arg;
    size_t lo, hi;
    adamw_chunk(j->o->n, part, nparts, &lo, &hi);
    adamw_step_range(j->o, j->params, j->grads, j->lr, j->inv_bc1, j->inv_bc2, j->gscale, lo, hi);
}

void adamw_step(AdamW *o, float *params, const float *grads, float lr) {
    adamw_step_scaled(o, params, grads, lr, 1.0f);
}

void adamw_step_scaled(AdamW *o, float *params, const float *grads, float lr, float grad_scale) {
    o->step++;
    const double t = (double)o->step;
    /* bias corrections in double: 1 - b^t loses everything in float for b2 near 1 */
    AdamWJob j = {.o = o, .params = params, .grads = grads, .lr = lr, .gscale = grad_scale,
                  .inv_bc1 = (float)(1.0 / (1.0 - pow((double)o->cfg.beta1, t))),
                  .inv_bc2 = (float)(1.0 / (1.0 - pow((double)o->cfg.beta2, t)))};
    if (o->n < ADAMW_PAR_MIN) adamw_step_part(&j, 0, 1);
    else ops_parallel(adamw_step_part, &j, 64);
}

// ----------------------------------------------------------------------------
// gradients

/* The squared norm is summed in double over fixed blocks of ADAMW_NORM_BLOCK elements:
 * in a block, lane l (of 8) adds the elements i = l mod 8 in order, then the lanes are
 * added in a fixed tree; the blocks' sums are added in order. The association depends
 * on n only — never on the thread count — and the 8 lanes vectorise. */
#define ADAMW_NORM_BLOCK 65536

static double sumsq_block(const float *g, size_t n) {
    double l[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) l[k] += (double)g[i + k] * (double)g[i + k];
    for (int k = 0; i < n; i++, k++) l[k] += (double)g[i] * (double)g[i];
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

typedef struct {
    const float *g;
    float *gw; /* for the scaling pass */
    size_t n;
    double *block_sums;
    float scale;
} NormJob;

static void norm_part(void *arg, int part, int nparts) {
    NormJob *j = arg;
    size_t b0, b1;
    adamw_share((j->n + ADAMW_NORM_BLOCK - 1) / ADAMW_NORM_BLOCK, part, nparts, &b0, &b1);
    for (size_t b = b0; b < b1; b++) {
        size_t lo = b * ADAMW_NORM_BLOCK,
               len = j->n - lo < ADAMW_NORM_BLOCK ? j->n - lo : ADAMW_NORM_BLOCK;
        j->block_sums[b] = sumsq_block(j->g + lo, len);
    }
}

static void scale_part(void *arg, int part, int nparts) {
    NormJob *j = arg;
    size_t lo, hi;
    adamw_chunk(j->n, part, nparts, &lo, &hi);
    float *restrict g = j->gw;
    const float s = j->scale;
    for (size_t i = lo; i < hi; i++) g[i] *= s;
}

double adamw_grad_norm(const float *grads, size_t n) {
    return sqrt(adamw_grad_sumsq(grads, n));
}

double adamw_grad_sumsq(const float *grads, size_t n) {
    size_t nb = (n + ADAMW_NORM_BLOCK - 1) / ADAMW_NORM_BLOCK;
    double one, *sums = nb > 1 ? xmalloc(nb * sizeof(double)) : &one;
    NormJob j = {.g = grads, .n = n, .block_sums = sums};
    if (nb == 0) return 0.0;
    if (n < ADAMW_PAR_MIN) norm_part(&j, 0, 1);
    else ops_parallel(norm_part, &j, (int)(nb < 64 ? nb : 64));
    double s = 0.0;
    for (size_t b = 0; b < nb; b++) s += sums[b];
    if (sums != &one) free(sums);
    return s;
}

float adamw_clip_scale(double norm, float max_norm) {
    if (!isfinite(norm) || !(max_norm > 0.0f) || norm <= (double)max_norm) return 1.0f;
    return (float)((double)max_norm / norm);
}

double adamw_clip_grad_norm(float *grads, size_t n, float max_norm) {
    double norm = adamw_grad_norm(grads, n);
    float scale = adamw_clip_scale(norm, max_norm);
    if (scale != 1.0f) {
        NormJob j = {.gw = grads, .n = n, .scale = scale};
        if (n < ADAMW_PAR_MIN) scale_part(&j, 0, 1);
        else ops_parallel(scale_part, &j, 64);
    }
    return norm;
}

int adamw_grads_finite(const float *grads, size_t n, size_t *first_bad) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(grads[i])) {
            if (first_bad) *first_bad = i;
            return 0;
        }
    }
    return 1;
}

// ----------------------------------------------------------------------------
// learning-rate schedule

int adamw_schedule_validate(const AdamWSchedule *s, char *err) {
    if (!(isfinite(s->max_lr) && s->max_lr >= 0.0f))
        return errf(err, "lr schedule: max_lr = %g must be a finite number >= 0",
                    (double)s->max_lr);
    if (!(isfinite(s->min_lr) && s->min_lr >= 0.0f && s->min_lr <= s->max_lr))
        return errf(err, "lr schedule: min_lr = %g must be in [0, max_lr = %g]",
                    (double)s->min_lr, (double)s->max_lr);
    if (s->warmup < 0) return errf(err, "lr schedule: warmup = %ld must be >= 0", s->warmup);
    if (s->total < 0 || (s->total > 0 && s->total <= s->warmup))
        return errf(err,
                    "lr schedule: total = %ld must be 0 (no decay) or larger than warmup = %ld",
                    s->total, s->warmup);
    return 0;
}

float adamw_schedule_lr(const AdamWSchedule *s, long step) {
    const double max_lr = s->max_lr, min_lr = s->min_lr;
    if (step < 0) step = 0;
    if (step < s->warmup) return (float)(max_lr * (double)(step + 1) / (double)s->warmup);
    if (s->total <= 0) return (float)max_lr;
    if (step >= s->total) return (float)min_lr;
    double r = (double)(step - s->warmup) / (double)(s->total - s->warmup);
    double coeff = 0.5 * (1.0 + cos(M_PI * r));
    return (float)(min_lr + coeff * (max_lr - min_lr));
}
