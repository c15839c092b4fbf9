/*
 * tests/gradcheck.h — the finite-difference gradient check that the kernel tests share
 * (test_ops.c, test_ops_llama.c): a GradCase names the inputs of one op, a loss (the
 * forward, projected on a fixed random vector) and a grad (forward + backward);
 * grad_check compares the backward's gradients with central differences and checks that
 * the backward accumulates (or overwrites, for the inputs marked `written`). Include after
 * test.h and util.h.
 */
#ifndef RLHF_GRADCHECK_H
#define RLHF_GRADCHECK_H

/* max |a-b| / max(max|b|, floor): error normalised by the size of the reference */
static double norm_err(const float *a, const float *b, size_t n, double floor) {
    double mx = floor, err = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > err) err = d;
        if (fabs(b[i]) > mx) mx = fabs(b[i]);
    }
    return err / mx;
}

// ----------------------------------------------------------------------------
// a generic finite-difference gradient check

#define GC_MAX_IN 4
typedef struct {
    const char *name;
    int nin;
    float *in[GC_MAX_IN];  /* inputs that are differentiated */
    float *din[GC_MAX_IN]; /* their gradients (filled by grad) */
    size_t n[GC_MAX_IN];
    double (*loss)(void *ctx);  /* forward, returns sum_i r_i out_i (in double) */
    void (*grad)(void *ctx);    /* forward + backward with dout = r, accumulating into din */
    void *ctx;
    float eps;
    double tol;      /* on the normalised error of each input */
    unsigned written; /* bit k: the backward writes din[k] instead of accumulating into it */
} GradCase;

/* Returns the worst normalised error over all inputs; CHECKs each against tol and, when
 * backward runs twice, the doubling of the accumulated gradients (or the unchanged value
 * of the written ones). */
static double grad_check_impl(GradCase *gc, int quiet);
static double grad_check(GradCase *gc) { return grad_check_impl(gc, 0); }
static double grad_check_impl(GradCase *gc, int quiet) {
    double worst = 0.0;
    for (int k = 0; k < gc->nin; k++) memset(gc->din[k], 0, gc->n[k] * sizeof(float));
    gc->grad(gc->ctx);
    float *first[GC_MAX_IN];
    for (int k = 0; k < gc->nin; k++) {
        first[k] = xalloc_floats(gc->n[k]);
        memcpy(first[k], gc->din[k], gc->n[k] * sizeof(float));
    }
    gc->grad(gc->ctx); /* accumulates: din must now be 2x first (written: 1x) */
    for (int k = 0; k < gc->nin; k++) {
        int accum_ok = 1;
        float times = (gc->written >> k) & 1u ? 1.0f : 2.0f;
        for (size_t i = 0; i < gc->n[k]; i++)
            if (fabsf(gc->din[k][i] - times * first[k][i]) > 1e-5f * (1.0f + fabsf(first[k][i])))
                accum_ok = 0;
        if (!quiet)
            CHECK_MSG(accum_ok, "%s input %d: backward does not %s", gc->name, k,
                      times == 1.0f ? "overwrite" : "accumulate");
        float *num = xalloc_floats(gc->n[k]);
        for (size_t i = 0; i < gc->n[k]; i++) {
            float x0 = gc->in[k][i];
            gc->in[k][i] = x0 + gc->eps;
            double lp = gc->loss(gc->ctx);
            gc->in[k][i] = x0 - gc->eps;
            double lm = gc->loss(gc->ctx);
            gc->in[k][i] = x0;
            /* the step actually taken in fp32 */
            double h = (double)(x0 + gc->eps) - (double)(x0 - gc->eps);
            num[i] = (float)((lp - lm) / h);
        }
        double e = norm_err(first[k], num, gc->n[k], 1e-6);
        if (!quiet)
            CHECK_MSG(e <= gc->tol, "%s input %d: normalised gradient error %.3g > %.3g", gc->name,
                      k, e, gc->tol);
        fprintf(stderr, "    grad %-10s input %d (%6zu elems): normalised err %.2e\n", gc->name, k,
                gc->n[k], e);
        if (e > worst) worst = e;
        free(num);
        free(first[k]);
    }
    return worst;
}

static double dot_d(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

// ----------------------------------------------------------------------------
// references

#endif
