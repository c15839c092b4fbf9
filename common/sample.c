/*
 * common/sample.c — temperature / top-k / top-p / greedy sampling of one token (the
 * semantics are specified in sample.h). Candidates are ordered by (probability desc,
 * token id asc), a strict total order, with an in-place quickselect (top-k) and
 * quicksort on the candidate ids; top-p without top-k first restricts the sort to the
 * tokens within a fixed log-ratio of the best one when they already hold the needed
 * mass (the nucleus is a prefix of the order, so this changes nothing but the cost).
 */
#include "sample.h"

#include <math.h>
#include <stdlib.h>

#include "ops.h"
#include "util.h"

int sample_params_validate(const SampleParams *p, char *err) {
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return errf(err, "temperature = %g: must be a finite number >= 0 (0 = greedy)",
                    (double)p->temperature);
    if (p->top_k < 0) return errf(err, "top_k = %d: must be >= 0 (0 = off)", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return errf(err, "top_p = %g: must be in (0, 1] (1 = off)", (double)p->top_p);
    return 0;
}

void sampler_init(Sampler *s, int V) {
    ASSERT(V >= 1);
    s->V = V;
    s->idx = xcalloc((size_t)V, sizeof(int));
    s->z = xalloc_floats((size_t)V);
    s->block = xcalloc((size_t)(V + SOFTMAX_BLOCK - 1) / SOFTMAX_BLOCK, sizeof(double));
}

void sampler_free(Sampler *s) {
    if (!s) return;
    free(s->idx);
    free(s->z);
    free(s->block);
    s->idx = NULL;
    s->z = NULL;
    s->block = NULL;
}

// ----------------------------------------------------------------------------
// ordering of candidates: a before b when z[a] > z[b], or equal and a < b

static inline int before(const float *z, int a, int b) {
    return z[a] > z[b] || (z[a] == z[b] && a < b);
}

static inline void swap_int(int *a, int *b) {
    int t = *a;
    *a = *b;
    *b = t;
}

/* Partition idx[lo..hi] around a median-of-three pivot; returns the pivot's final index. */
static int partition(const float *z, int *idx, int lo, int hi) {
    int mid = lo + (hi - lo) / 2;
    if (before(z, idx[mid], idx[lo])) swap_int(&idx[mid], &idx[lo]);
    if (before(z, idx[hi], idx[lo])) swap_int(&idx[hi], &idx[lo]);
    if (before(z, idx[hi], idx[mid])) swap_int(&idx[hi], &idx[mid]);
    swap_int(&idx[mid], &idx[hi]); /* pivot (the median) at hi */
    int pv = idx[hi], store = lo;
    for (int i = lo; i < hi; i++)
        if (before(z, idx[i], pv)) swap_int(&idx[i], &idx[store++]);
    swap_int(&idx[store], &idx[hi]);
    return store;
}

static void insertion_sort(const float *z, int *idx, int lo, int hi) {
    for (int i = lo + 1; i <= hi; i++) {
        int v = idx[i], j = i - 1;
        while (j >= lo && before(z, v, idx[j])) {
            idx[j + 1] = idx[j];
            j--;
        }
        idx[j + 1] = v;
    }
}

static void sort_ids(const float *z, int *idx, int lo, int hi) {
    while (hi - lo > 16) {
        int p = partition(z, idx, lo, hi);
        /* recurse into the smaller side: O(log n) stack */
        if (p - lo < hi - p) {
            sort_ids(z, idx, lo, p - 1);
            lo = p + 1;
        } else {
            sort_ids(z, idx, p + 1, hi);
            hi = p - 1;
        }
    }
    insertion_sort(z, idx, lo, hi);
}

/* Move the k first candidates in the order to idx[0..k) (unordered). */
static void select_first_k(const float *z, int *idx, int n, int k) {
    int lo = 0, hi = n - 1;
    while (hi > lo) {
        int p = partition(z, idx, lo, hi);
        if (p == k - 1 || p == k) return;
        if (p < k) lo = p + 1;
        else hi = p - 1;
    }
}

// ----------------------------------------------------------------------------

#define NUCLEUS_LOG_RATIO 16.0f /* prefilter: tokens with z >= max - 16 (p ratio e^-16) */

int sample_token(Sampler *s, const float *logits, const SampleParams *p, Rng *rng,
                 float *logprob) {
    int V = s->V, tok = 0;
    float lp_out, ent, lse;
    if (p->temperature == 0.0f) {
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[tok]) tok = i;
        logprob_forward(&lp_out, &ent, &lse, logits, &tok, 1.0f, 1, V);
        *logprob = lp_out;
        return tok;
    }
    float inv_t = 1.0f / p->temperature, *z = s->z;
    double u = rng_uniform_double(rng);
    int k = p->top_k > 0 && p->top_k < V ? p->top_k : V;
    if (k == V && p->top_p >= 1.0f) {
        /* no filter (the RL default): the first token, in id order, at which the running
         * sum of the weights passes u * total. The weights and their block sums come from
         * one vectorised pass; the walk skips whole blocks that stay below the target and
         * adds one weight at a time only inside the block that crosses it. (Two serial
         * passes of expf before: 124M generation at batch 8, 1220 -> 1182 ms.) */
        double total = softmax_row_weights(z, s->block, logits, V, inv_t);
        double target = u * total, cum = 0.0;
        tok = -1;
        for (int b0 = 0; b0 < V && tok < 0; b0 += SOFTMAX_BLOCK) {
            double bs = s->block[b0 / SOFTMAX_BLOCK];
            if (cum + bs <= target) {
                cum += bs;
                continue;
            }
            int b1 = V - b0 < SOFTMAX_BLOCK ? V : b0 + SOFTMAX_BLOCK;
            for (int i = b0; i < b1; i++) {
                cum += z[i];
                if (cum > target) {
                    tok = i;
                    break;
                }
            }
        }
        /* rounding kept the sum at or under the target: the last token with weight */
        for (int i = V - 1; tok < 0 && i >= 0; i--)
            if (z[i] > 0.0f) tok = i;
    } else {
        float mx = -INFINITY;
        for (int i = 0; i < V; i++) {
            z[i] = logits[i] * inv_t;
            mx = z[i] > mx ? z[i] : mx;
        }
        int *idx = s->idx, n = 0;
        double mass = 0.0; /* the mass the top-p fraction refers to */
        if (k < V) {
            for (int i = 0; i < V; i++) idx[i] = i;
            select_first_k(z, idx, V, k);
            n = k;
            for (int j = 0; j < n; j++) mass += expf(z[idx[j]] - mx);
        } else {
            double near = 0.0;
            for (int i = 0; i < V; i++) {
                double e = expf(z[i] - mx);
                mass += e;
                if (z[i] >= mx - NUCLEUS_LOG_RATIO) {
                    idx[n++] = i;
                    near += e;
                }
            }
            if (near < (double)p->top_p * mass) { /* the nucleus reaches further */
                n = V;
                for (int i = 0; i < V; i++) idx[i] = i;
            }
        }
        sort_ids(z, idx, 0, n - 1);
        int kept = n;
        double kept_mass = 0.0;
        if (p->top_p < 1.0f) {
            double need = (double)p->top_p * mass;
            for (int j = 0; j < n; j++) {
                kept_mass += expf(z[idx[j]] - mx);
                if (kept_mass >= need) {
                    kept = j + 1;
                    break;
                }
            }
            if (kept == n) { /* rounding left the need unmet: keep all candidates */
                kept_mass = 0.0;
                for (int j = 0; j < n; j++) kept_mass += expf(z[idx[j]] - mx);
            }
        } else {
            kept_mass = mass;
        }
        double target = u * kept_mass, cum = 0.0;
        tok = idx[0];
        for (int j = 0; j < kept; j++) {
            double e = expf(z[idx[j]] - mx);
            if (e > 0.0) tok = idx[j];
            cum += e;
            if (cum > target) break;
        }
    }
    ASSERT(tok >= 0 && tok < V);
    logprob_forward(&lp_out, &ent, &lse, logits, &tok, p->temperature, 1, V);
    *logprob = lp_out;
    return tok;
}
